//! The labels onboarding service: publishes a `LabelOnboarded` when a record label signs up.
//!
//! With `meshline up` running: `cargo run --example labels_service -- 5`, then
//! `meshline tail labels.onboarded`. `meshline up --demo` runs this producer too.

use std::{error::Error, time::Duration};

use meshline::{demo::events::LabelOnboarded, sdk::Producer};

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
    let mut rng = rand::rng();
    let labels: Vec<LabelOnboarded> = (0..count)
        .map(|_| LabelOnboarded::random(&mut rng, chrono::Utc::now()))
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
