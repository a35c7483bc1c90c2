//! The artists domain's play-counting service: computes the derived product
//! `artists.artist-plays` from `player.play-events` as any downstream domain would, with the
//! SDK's consumer and producer only (the product declares `player.play-events` as its input,
//! which is its lineage in the catalog and in OpenLineage events).
//!
//! Delivery: at least once (a play's offset is committed once its derived event is
//! acknowledged). Each derived event's CloudEvents `id` is the play's (`play-<play_id>`), so a
//! play read again after a restart gives an event with the same `source` and `id`, which
//! consumers drop as a repeat (the SDK consumer's `dedup_window`). Limits: the product topic
//! holds such a repeat twice.

use tokio_util::sync::CancellationToken;

use super::events::{ArtistPlayed, PlayEvent};
use crate::sdk::{Consumer, DomainEvent, Producer};

/// The service's consumer group.
pub const GROUP: &str = "artists-play-counter";

/// Derives an [`ArtistPlayed`] from every play until `stop`; returns how many it published.
pub async fn run(
    bootstrap: &str,
    registry_url: &str,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let producer = Producer::builder(bootstrap, registry_url)
        .source("/artists/play-counter")
        .event::<ArtistPlayed>()
        .build()
        .await?;
    let mut consumer = Consumer::<PlayEvent>::builder(bootstrap, registry_url)
        .group(GROUP)
        .product(PlayEvent::PRODUCT)
        .build()?;
    let mut published = 0;
    loop {
        let received = tokio::select! {
            received = consumer.next() => received?,
            () = stop.cancelled() => break,
        };
        producer.send(&ArtistPlayed::from(&received.event)).await?;
        consumer.commit(&received)?;
        published += 1;
    }
    producer.flush(std::time::Duration::from_secs(10))?;
    Ok(published)
}
