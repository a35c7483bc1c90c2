//! The labels onboarding service: publishes a `LabelOnboarded` when a record label signs up.
//!
//! With `meshline up` running: `cargo run -p meshline-sdk --example labels_service -- 5`, then
//! `meshline tail labels.onboarded`.
//!
//! The event type is the service's own: a serde type whose derived Avro schema must be one the
//! product's registered schema can read (the SDK checks this when the producer is built).

use std::{error::Error, time::Duration};

use apache_avro::AvroSchema;
use chrono::{DateTime, Utc};
use meshline_sdk::{DomainEvent, Producer};
use serde::Serialize;

/// A label's tier: independent, major, or part of a major.
#[derive(Debug, Clone, Copy, Serialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "com.example.labels")]
enum Tier {
    Indie,
    Major,
    Sublabel,
}

/// A record label signed up.
#[derive(Debug, Clone, Serialize, AvroSchema)]
#[avro(namespace = "com.example.labels")]
struct LabelOnboarded {
    label_id: String,
    name: String,
    country: String,
    tier: Tier,
    catalog_size: i32,
    distributor: Option<String>,
    /// When, in Unix milliseconds.
    onboarded_at: i64,
}

impl DomainEvent for LabelOnboarded {
    const PRODUCT: &'static str = "labels.onboarded";
    const TYPE: &'static str = "com.example.labels.label.onboarded";
    fn subject(&self) -> Option<String> {
        Some(self.label_id.clone())
    }
    fn time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.onboarded_at)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(3), |n| n.parse())?;
    let bootstrap = std::env::var("MESHLINE_BOOTSTRAP").unwrap_or("127.0.0.1:9092".into());
    let registry = std::env::var("MESHLINE_REGISTRY").unwrap_or("http://127.0.0.1:8081".into());

    let producer = Producer::builder(&bootstrap, &registry)
        .source("/labels/onboarding-service")
        .event::<LabelOnboarded>()
        .build()
        .await?;

    // Several labels at once: in flight together, acknowledged together.
    let tiers = [Tier::Indie, Tier::Major, Tier::Sublabel];
    let labels: Vec<LabelOnboarded> = (0..count)
        .map(|i| LabelOnboarded {
            label_id: format!("label-{}", uuid::Uuid::new_v4().simple()),
            name: format!("Label {i} Records"),
            country: "GB".into(),
            tier: tiers[i % tiers.len()],
            catalog_size: 100 + i as i32,
            distributor: None,
            onboarded_at: Utc::now().timestamp_millis(),
        })
        .collect();
    for (label, delivery) in labels.iter().zip(producer.send_batch(&labels).await?) {
        println!(
            "{} ({:?}, {} tracks) onboarded: {}@{}",
            label.name, label.tier, label.catalog_size, delivery.topic, delivery.offset
        );
    }
    producer.flush(Duration::from_secs(5))?;
    Ok(())
}
