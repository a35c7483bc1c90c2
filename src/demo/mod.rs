//! The media-streaming demo: the `player`, `artists` and `labels` domains publishing their
//! domain events, so a newcomer sees data products fill up within seconds of `meshline up --demo`.
//!
//! Delivery: at least once per event the demo generates, through an idempotent producer (no
//! duplicates from retries); on shutdown every event handed to the producer is awaited before
//! the function returns, so a clean stop loses nothing that was counted as sent.

use std::{collections::HashMap, sync::Arc, time::Duration};

use apache_avro::{writer::datum::GenericDatumWriter, Schema};
use chrono::{DateTime, Utc};
use cloudevents::{EventBuilder, EventBuilderV10};
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer},
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{
    binding::kafka::{Record, PARTITION_KEY},
    codec::wire,
};

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A demo product is missing from the catalog.
    #[error("the demo needs product `{0}`; run from the repository root or pass `--config` pointing at its `config/` directory")]
    MissingProduct(&'static str),
    /// The event does not fit the product schema.
    #[error("demo event does not match the schema of `{product}`: {source}")]
    Encode {
        /// The product.
        product: &'static str,
        /// Why.
        source: Box<apache_avro::Error>,
    },
    /// The CloudEvent could not be built.
    #[error("demo event: {0}")]
    Event(String),
    /// The producer failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the demo sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events acknowledged by the broker, per product.
    pub acked: HashMap<&'static str, u64>,
    /// Events the broker refused.
    pub failed: u64,
}

/// A product of the demo, with the schema id its events are framed with.
#[derive(Debug, Clone)]
pub struct Target {
    /// The schema its payloads are written with.
    pub schema: Arc<Schema>,
    /// The registry id of that schema.
    pub schema_id: u32,
    /// The topic the demo writes.
    pub topic: String,
}

/// The demo's products, by id.
pub const PRODUCTS: [&str; 3] = [PLAYS, PROFILES, LABELS];
const PLAYS: &str = "player.play-events";
const PROFILES: &str = "artists.profile-changes";
const LABELS: &str = "labels.onboarded";

/// Events per second for each demo product.
fn rate(product: &str) -> u32 {
    match product {
        PLAYS => 50,
        PROFILES => 4,
        _ => 1,
    }
}

/// Avro enum `Device`.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Device {
    Mobile,
    Desktop,
    Web,
    Speaker,
    Car,
}

/// Avro enum `Tier`.
#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Tier {
    Indie,
    Major,
    Sublabel,
}

#[derive(Serialize)]
struct PlayEvent<'a> {
    play_id: String,
    user_id: String,
    track_id: String,
    artist_id: String,
    device: Device,
    country: &'a str,
    started_at: i64,
    duration_ms: i64,
    completed: bool,
    context: Option<String>,
}

#[derive(Serialize)]
struct ArtistProfileChanged<'a> {
    artist_id: String,
    name: String,
    genres: Vec<&'a str>,
    country: &'a str,
    verified: bool,
    followers: i64,
    changed_at: i64,
}

#[derive(Serialize)]
struct LabelOnboarded<'a> {
    label_id: String,
    name: String,
    country: &'a str,
    tier: Tier,
    catalog_size: i32,
    distributor: Option<&'a str>,
    onboarded_at: i64,
}

const COUNTRIES: [&str; 8] = ["SE", "US", "GB", "DE", "BR", "JP", "FR", "NG"];
const GENRES: [&str; 8] = [
    "pop",
    "rock",
    "jazz",
    "hip-hop",
    "electronic",
    "folk",
    "classical",
    "afrobeats",
];

/// One generated event: CloudEvents attributes and the Avro body.
struct Generated {
    ty: &'static str,
    source: &'static str,
    subject: String,
    time: DateTime<Utc>,
    body: Vec<u8>,
}

fn generate(
    product: &'static str,
    writer: &GenericDatumWriter<'_>,
    rng: &mut StdRng,
    time: DateTime<Utc>,
) -> Result<Generated> {
    let writer = |v: &dyn erased::Ser| v.write(writer);
    let millis = time.timestamp_millis();
    let (ty, source, subject, body) = match product {
        PLAYS => {
            let user = format!("user-{}", rng.random_range(1..500));
            let event = PlayEvent {
                play_id: uuid::Uuid::new_v4().to_string(),
                user_id: user.clone(),
                track_id: format!("track-{}", rng.random_range(1..2000)),
                artist_id: format!("artist-{}", rng.random_range(1..100)),
                device: [
                    Device::Mobile,
                    Device::Desktop,
                    Device::Web,
                    Device::Speaker,
                    Device::Car,
                ]
                .choose(rng)
                .copied()
                .unwrap_or(Device::Web),
                country: COUNTRIES.choose(rng).copied().unwrap_or("SE"),
                started_at: millis,
                duration_ms: rng.random_range(5_000..400_000),
                completed: rng.random_bool(0.7),
                context: rng
                    .random_bool(0.5)
                    .then(|| format!("playlist-{}", rng.random_range(1..50))),
            };
            (
                "com.example.player.track.played",
                "/player/web-player",
                user,
                writer(&event),
            )
        }
        PROFILES => {
            let n = rng.random_range(1..100);
            let artist = format!("artist-{n}");
            let event = ArtistProfileChanged {
                artist_id: artist.clone(),
                name: format!("Artist {n}"),
                genres: GENRES.choose_multiple(rng, 2).copied().collect(),
                country: COUNTRIES.choose(rng).copied().unwrap_or("SE"),
                verified: rng.random_bool(0.4),
                followers: rng.random_range(0..5_000_000),
                changed_at: millis,
            };
            (
                "com.example.artists.profile.changed",
                "/artists/profile-service",
                artist,
                writer(&event),
            )
        }
        _ => {
            let n = rng.random_range(1..100_000);
            let label = format!("label-{n}");
            let event = LabelOnboarded {
                label_id: label.clone(),
                name: format!("Label {n} Records"),
                country: COUNTRIES.choose(rng).copied().unwrap_or("SE"),
                tier: [Tier::Indie, Tier::Major, Tier::Sublabel]
                    .choose(rng)
                    .copied()
                    .unwrap_or(Tier::Indie),
                catalog_size: rng.random_range(1..20_000),
                distributor: rng.random_bool(0.5).then_some("Global Distro"),
                onboarded_at: millis,
            };
            (
                "com.example.labels.label.onboarded",
                "/labels/onboarding-service",
                label,
                writer(&event),
            )
        }
    };
    Ok(Generated {
        ty,
        source,
        subject,
        time,
        body: body.map_err(|source| Error::Encode {
            product,
            source: Box::new(source),
        })?,
    })
}

/// Object-safe serialization of the three demo types.
mod erased {
    use apache_avro::writer::datum::GenericDatumWriter;
    use serde::Serialize;

    pub trait Ser {
        fn write(&self, writer: &GenericDatumWriter<'_>) -> Result<Vec<u8>, apache_avro::Error>;
    }

    impl<T: Serialize> Ser for T {
        fn write(&self, writer: &GenericDatumWriter<'_>) -> Result<Vec<u8>, apache_avro::Error> {
            writer.write_ser_to_vec(self)
        }
    }
}

/// Builds the Kafka record of one demo event: CloudEvents binary mode, Confluent-framed Avro.
fn record(generated: Generated, target: &Target, registry_url: &str) -> Result<Record> {
    let event = EventBuilderV10::new()
        .id(uuid::Uuid::new_v4().to_string())
        .source(generated.source)
        .ty(generated.ty)
        .subject(generated.subject.clone())
        .time(generated.time)
        .data_with_schema(
            "application/avro",
            format!("{registry_url}/schemas/ids/{}", target.schema_id),
            wire::encode(target.schema_id, &generated.body),
        )
        .extension(PARTITION_KEY, generated.subject)
        .build()
        .map_err(|e| Error::Event(e.to_string()))?;
    Record::from_event(event).map_err(|e| Error::Event(e.to_string()))
}

/// Publishes demo events to `targets` until `stop` is cancelled, then waits for every pending
/// delivery and returns what was acknowledged.
pub async fn run(
    producer: FutureProducer,
    targets: HashMap<&'static str, Target>,
    registry_url: String,
    stop: CancellationToken,
) -> Result<Stats> {
    for product in PRODUCTS {
        if !targets.contains_key(product) {
            return Err(Error::MissingProduct(product));
        }
    }
    // One writer per schema, built up front: a broken schema fails at start, not per event.
    let mut writers = HashMap::new();
    for (product, target) in &targets {
        let writer = GenericDatumWriter::builder(&target.schema)
            .build()
            .map_err(|source| Error::Encode {
                product,
                source: Box::new(source),
            })?;
        writers.insert(*product, writer);
    }
    let mut rng = StdRng::from_os_rng();
    let mut stats = Stats::default();
    let tick = Duration::from_millis(100);
    let mut interval = tokio::time::interval(tick);
    let mut carry: HashMap<&str, f64> = HashMap::new();
    while !stop.is_cancelled() {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.cancelled() => break,
        }
        let mut pending = Vec::new();
        for product in PRODUCTS {
            let target = &targets[product];
            let due = carry.entry(product).or_default();
            *due += f64::from(rate(product)) * tick.as_secs_f64();
            while *due >= 1.0 {
                *due -= 1.0;
                let generated = generate(product, &writers[product], &mut rng, Utc::now())?;
                let record = record(generated, target, &registry_url)?;
                pending.push((product, send(&producer, &target.topic, &record).await?));
            }
        }
        for (product, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => *stats.acked.entry(product).or_default() += 1,
                Ok(Err((error, _))) => {
                    tracing::warn!(%error, product, "demo event not delivered");
                    stats.failed += 1;
                }
                Err(_) => stats.failed += 1,
            }
        }
    }
    // every delivery above was awaited; flush anything librdkafka still holds
    producer.flush(Duration::from_secs(10))?;
    Ok(stats)
}

/// Enqueues `record` without blocking the runtime, backing off while the queue is full.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    record: &Record,
) -> Result<DeliveryFuture, KafkaError> {
    let headers = record.owned_headers();
    loop {
        let mut future = FutureRecord::<[u8], [u8]>::to(topic).headers(headers.clone());
        if let Some(key) = &record.key {
            future = future.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            future = future.payload(payload.as_slice());
        }
        match producer.send_result(future) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(path: &str) -> Schema {
        Schema::parse_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn every_demo_event_fits_its_committed_schema_and_carries_its_attributes() {
        let mut rng = StdRng::seed_from_u64(7);
        for (product, path) in [
            (PLAYS, "schemas/player/play-event.avsc"),
            (PROFILES, "schemas/artists/profile-changed.avsc"),
            (LABELS, "schemas/labels/label-onboarded.avsc"),
        ] {
            let schema = Arc::new(schema(path));
            let target = Target {
                schema: schema.clone(),
                schema_id: 3,
                topic: product.into(),
            };
            let writer = GenericDatumWriter::builder(&schema).build().unwrap();
            let generated = generate(product, &writer, &mut rng, Utc::now()).unwrap();
            let subject = generated.subject.clone();
            let r = record(generated, &target, "http://127.0.0.1:8081").unwrap();
            assert_eq!(r.key.as_deref(), Some(subject.as_bytes()));
            let (id, body) = wire::decode(r.payload.as_deref().unwrap()).unwrap();
            assert_eq!(id, 3);
            crate::codec::json::avro_to_json(&schema, body).unwrap();
            let e = r.to_event().unwrap();
            assert!(cloudevents::AttributesReader::source(&e)
                .to_string()
                .starts_with(&format!("/{}", product.split('.').next().unwrap())));
        }
    }
}
