//! The player service: publishes a `PlayEvent` each time a listener starts a track.
//!
//! With `meshline up` running: `cargo run --example player_service -- 20`, then
//! `meshline tail player.play-events`. `meshline up --demo` runs this producer too.

use std::{error::Error, time::Duration};

use meshline::{demo::events::PlayEvent, sdk::Producer};

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

    let mut rng = rand::rng();
    for _ in 0..count {
        let play = PlayEvent::random(&mut rng, chrono::Utc::now());
        let delivery = producer.send(&play).await?;
        println!(
            "{} played {} ({}/{}@{})",
            play.user_id, play.track_id, delivery.topic, delivery.partition, delivery.offset
        );
    }
    producer.flush(Duration::from_secs(5))?;
    Ok(())
}
