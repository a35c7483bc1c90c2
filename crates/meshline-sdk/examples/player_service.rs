//! The player service: publishes a `PlayEvent` each time a listener starts a track.
//!
//! With `meshline up` running: `cargo run -p meshline-sdk --example player_service -- 20`, then
//! `meshline tail player.play-events`.
//!
//! The event type is the service's own: a serde type whose derived Avro schema must be one the
//! product's registered schema can read (the SDK checks this when the producer is built).

use std::{error::Error, time::Duration};

use apache_avro::AvroSchema;
use chrono::{DateTime, Utc};
use meshline_sdk::{DomainEvent, Producer};
use serde::Serialize;

/// Where a play happened.
#[derive(Debug, Clone, Copy, Serialize, AvroSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[avro(namespace = "com.example.player")]
enum Device {
    Mobile,
    Desktop,
    Web,
    Speaker,
    Car,
}

/// A listener started playing a track.
#[derive(Debug, Clone, Serialize, AvroSchema)]
#[avro(namespace = "com.example.player")]
struct PlayEvent {
    play_id: String,
    user_id: String,
    track_id: String,
    artist_id: String,
    device: Device,
    country: String,
    /// Start, in Unix milliseconds.
    started_at: i64,
    duration_ms: i64,
    completed: bool,
    context: Option<String>,
}

impl DomainEvent for PlayEvent {
    const PRODUCT: &'static str = "player.play-events";
    const TYPE: &'static str = "com.example.player.track.played";
    fn subject(&self) -> Option<String> {
        Some(self.user_id.clone())
    }
    fn time(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_millis(self.started_at)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(10), |n| n.parse())?;
    let bootstrap = std::env::var("MESHLINE_BOOTSTRAP").unwrap_or("127.0.0.1:9092".into());
    let registry = std::env::var("MESHLINE_REGISTRY").unwrap_or("http://127.0.0.1:8081".into());

    // Checks PlayEvent against the registered contract of player.play-events before anything
    // is sent; events go to the .ingress topic, where the gateway checks them again.
    let producer = Producer::builder(&bootstrap, &registry)
        .source("/player/web-player")
        .event::<PlayEvent>()
        .build()
        .await?;

    let devices = [
        Device::Mobile,
        Device::Desktop,
        Device::Web,
        Device::Speaker,
        Device::Car,
    ];
    for i in 0..count {
        let play = PlayEvent {
            play_id: uuid::Uuid::new_v4().to_string(),
            user_id: format!("user-{}", i % 7),
            track_id: format!("track-{}", i * 31 % 2000),
            artist_id: format!("artist-{}", i * 7 % 100),
            device: devices[i % devices.len()],
            country: "SE".into(),
            started_at: Utc::now().timestamp_millis(),
            duration_ms: 180_000,
            completed: i % 3 != 0,
            context: None,
        };
        let delivery = producer.send(&play).await?;
        println!(
            "{} played {} ({}/{}@{})",
            play.user_id, play.track_id, delivery.topic, delivery.partition, delivery.offset
        );
    }
    producer.flush(Duration::from_secs(5))?;
    Ok(())
}
