//! The media-streaming demo: the `player`, `artists` and `labels` domains publishing their
//! domain events through the SDK, so a newcomer sees data products fill up within seconds of
//! `meshline up --demo`, and the artists' play counter deriving `artists.artist-plays` from the
//! player's plays ([`artist_plays`]), and the products in JSON Schema and Protobuf filling
//! from producers that write those formats ([`foreign`]). `examples/player_service.rs` and `examples/labels_service.rs` are the
//! same producers as standalone programs.
//!
//! Delivery: at least once per event the demo generates, through the SDK's idempotent producer
//! (no duplicates from retries); every event handed to the producer is awaited before `run`
//! returns, so a clean stop loses nothing that was counted as sent. Events go to each product's
//! `.ingress` topic, where the gateway checks them (the SDK's default target).

pub mod artist_plays;
pub mod events;
pub mod foreign;

use std::{collections::HashMap, time::Duration};

use chrono::Utc;
use rand::{rngs::StdRng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::sdk::{
    producer::{self, Pending},
    DomainEvent, Producer,
};
use events::{ArtistProfileChanged, LabelOnboarded, PlayEvent};

/// What the demo sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events acknowledged by the broker, per product.
    pub acked: HashMap<&'static str, u64>,
    /// Events the broker refused.
    pub failed: u64,
}

/// The demo's products, with events per second.
pub const PRODUCTS: [(&str, u32); 3] = [
    (PlayEvent::PRODUCT, 50),
    (ArtistProfileChanged::PRODUCT, 4),
    (LabelOnboarded::PRODUCT, 1),
];

/// The three operational services of the demo, one producer each, with their own CloudEvents
/// source under their domain's prefix.
#[derive(Debug, Clone)]
pub struct Services {
    player: Producer,
    artists: Producer,
    labels: Producer,
}

/// Builds the demo's producers; each checks its event type against the registered contract.
pub async fn services(bootstrap: &str, registry_url: &str) -> producer::Result<Services> {
    let builder = |source: &str| Producer::builder(bootstrap, registry_url).source(source);
    Ok(Services {
        player: builder("/player/web-player")
            .event::<PlayEvent>()
            .build()
            .await?,
        artists: builder("/artists/profile-service")
            .event::<ArtistProfileChanged>()
            .build()
            .await?,
        labels: builder("/labels/onboarding-service")
            .event::<LabelOnboarded>()
            .build()
            .await?,
    })
}

/// History sent before live events, per product: how far back, and one event every so often.
/// Plays and profile changes cover the last three days (daily and hourly windows close at once);
/// label sign-ups the last 40 days, so last month's snapshot appears too.
pub const BACKFILL: [(&str, Duration, Duration); 3] = [
    (
        PlayEvent::PRODUCT,
        Duration::from_secs(3 * 24 * 3600),
        Duration::from_secs(120),
    ),
    (
        ArtistProfileChanged::PRODUCT,
        Duration::from_secs(3 * 24 * 3600),
        Duration::from_secs(900),
    ),
    (
        LabelOnboarded::PRODUCT,
        Duration::from_secs(40 * 24 * 3600),
        Duration::from_secs(3 * 3600),
    ),
];

/// Sends [`BACKFILL`]: events with past event times, oldest first, so the snapshotter has
/// history to write as soon as it starts.
pub async fn backfill(services: &Services, stats: &mut Stats) -> producer::Result<()> {
    let mut rng = StdRng::from_os_rng();
    let now = Utc::now();
    for (product, back, every) in BACKFILL {
        let mut pending = Vec::new();
        let mut at = now - chrono::Duration::from_std(back).unwrap_or_default();
        let step = chrono::Duration::from_std(every).unwrap_or_default();
        while at < now {
            let sent = match product {
                PlayEvent::PRODUCT => {
                    services
                        .player
                        .enqueue(&PlayEvent::random(&mut rng, at))
                        .await
                }
                ArtistProfileChanged::PRODUCT => {
                    services
                        .artists
                        .enqueue(&ArtistProfileChanged::random(&mut rng, at))
                        .await
                }
                _ => {
                    services
                        .labels
                        .enqueue(&LabelOnboarded::random(&mut rng, at))
                        .await
                }
            };
            pending.push(sent?);
            at += step;
        }
        for delivery in pending {
            match delivery.acknowledged().await {
                Ok(_) => *stats.acked.entry(product).or_default() += 1,
                Err(error) => {
                    tracing::warn!(%error, product, "demo history event not delivered");
                    stats.failed += 1;
                }
            }
        }
    }
    Ok(())
}

/// Sends the history ([`backfill`]), then publishes live demo events until `stop` is
/// cancelled, then waits for every pending delivery and returns what was acknowledged.
pub async fn run(services: Services, stop: CancellationToken) -> producer::Result<Stats> {
    let mut rng = StdRng::from_os_rng();
    let mut stats = Stats::default();
    backfill(&services, &mut stats).await?;
    let tick = Duration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    let mut carry: HashMap<&str, f64> = HashMap::new();
    while !stop.is_cancelled() {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => break,
        }
        let mut pending: Vec<(&'static str, Pending)> = Vec::new();
        for (product, rate) in PRODUCTS {
            let due = carry.entry(product).or_default();
            *due += f64::from(rate) * tick.as_secs_f64();
            while *due >= 1.0 {
                *due -= 1.0;
                let now = Utc::now();
                let sent = match product {
                    PlayEvent::PRODUCT => {
                        let event = PlayEvent::random(&mut rng, now);
                        services.player.enqueue(&event).await
                    }
                    ArtistProfileChanged::PRODUCT => {
                        let event = ArtistProfileChanged::random(&mut rng, now);
                        services.artists.enqueue(&event).await
                    }
                    _ => {
                        let event = LabelOnboarded::random(&mut rng, now);
                        services.labels.enqueue(&event).await
                    }
                };
                pending.push((product, sent?));
            }
        }
        for (product, delivery) in pending {
            match delivery.acknowledged().await {
                Ok(_) => *stats.acked.entry(product).or_default() += 1,
                Err(error) => {
                    tracing::warn!(%error, product, "demo event not delivered");
                    stats.failed += 1;
                }
            }
        }
    }
    for producer in [&services.player, &services.artists, &services.labels] {
        producer.flush(Duration::from_secs(10))?;
    }
    Ok(stats)
}
