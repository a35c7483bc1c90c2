//! The demo's products in other schema languages than Avro, produced as teams without the Rust
//! SDK produce them: `labels.releases` as a web team's JSON serializer writes JSON Schema
//! events, `artists.follows` as a gRPC service's Protobuf serializer writes Protobuf messages.
//! Each event is framed with the product's registered schema id (and, for Protobuf, the message
//! indexes) and sent to the product's ingress topic with CloudEvents headers in binary mode.
//!
//! Delivery: at least once, through an idempotent producer; every event is awaited before `run`
//! returns. Limits: the events are built here, not by Confluent's serializers (those are tested
//! against the platform from Python).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use protobuf::reflect::{MessageDescriptor, ReflectValueBox};
use rand::{rngs::StdRng, seq::IndexedRandom, Rng, SeedableRng};
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    broker,
    codec::wire,
    formats::{self, protobuf as proto},
    registry::{api::VersionId, client::Client},
};

/// The JSON Schema product.
pub const RELEASES: &str = "labels.releases";
/// The Protobuf product.
pub const FOLLOWS: &str = "artists.follows";

/// Publishes history (the last two days) and then live events of both products until `stop`;
/// returns the events acknowledged per product.
pub async fn run(
    bootstrap: &str,
    registry_url: &str,
    stop: CancellationToken,
) -> anyhow::Result<HashMap<&'static str, u64>> {
    let client = Client::new(registry_url);
    let releases_id = latest_id(&client, RELEASES).await?;
    let follows = client
        .version(&format!("{FOLLOWS}-value"), VersionId::Latest)
        .await?;
    let (follow, indexes) = crate::registry::protobuf::message_of(
        crate::registry::protobuf::compile(&follows.schema, &[]).map_err(anyhow::Error::msg)?,
        formats::message_of(&follows).as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut follow_frame = Vec::new();
    wire::encode_header(follows.id.unwrap_or_default(), &mut follow_frame);
    proto::write_indexes(&indexes, &mut follow_frame);
    let producer: FutureProducer = broker::producer_config(bootstrap).create()?;
    let mut rng = StdRng::from_os_rng();
    let mut acked: HashMap<&'static str, u64> = HashMap::new();
    let now = Utc::now();
    let mut history = Vec::new();
    for hours in (1..=48).rev() {
        let at = now - chrono::Duration::hours(hours);
        history.push(release(&mut rng, releases_id, at));
        for _ in 0..6 {
            history.push(follow_event(&mut rng, &follow, &follow_frame, at)?);
        }
    }
    send(&producer, history, &mut acked).await;
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut tick = 0u64;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => break,
        }
        tick += 1;
        let now = Utc::now();
        let mut events = vec![follow_event(&mut rng, &follow, &follow_frame, now)?];
        if tick.is_multiple_of(10) {
            events.push(release(&mut rng, releases_id, now));
        }
        send(&producer, events, &mut acked).await;
    }
    Ok(acked)
}

async fn latest_id(client: &Client, product: &str) -> anyhow::Result<u32> {
    let body = client
        .version(&format!("{product}-value"), VersionId::Latest)
        .await?;
    Ok(body.id.unwrap_or_default())
}

/// One event ready to send: its product, key, payload and CloudEvents attributes.
struct Event {
    product: &'static str,
    key: String,
    payload: Vec<u8>,
    ty: &'static str,
    source: &'static str,
    content_type: &'static str,
    time: DateTime<Utc>,
}

fn release(rng: &mut StdRng, schema_id: u32, at: DateTime<Utc>) -> Event {
    let label = format!("label-{}", rng.random_range(1..=40));
    let format = ["ALBUM", "EP", "SINGLE"]
        .choose(rng)
        .copied()
        .unwrap_or("EP");
    let document = json!({
        "release_id": uuid::Uuid::new_v4().to_string(),
        "label_id": label,
        "title": format!("Release {}", rng.random_range(1..=10_000)),
        "format": format,
        "tracks": match format { "SINGLE" => 1, "EP" => rng.random_range(3..=6), _ => rng.random_range(8..=16) },
        "release_date": at.format("%Y-%m-%d").to_string(),
        "explicit": rng.random_bool(0.2),
    });
    Event {
        product: RELEASES,
        key: label,
        payload: wire::encode(schema_id, document.to_string().as_bytes()),
        ty: "com.example.labels.release.announced",
        source: "/labels/release-desk",
        content_type: "application/json",
        time: at,
    }
}

fn follow_event(
    rng: &mut StdRng,
    message: &MessageDescriptor,
    frame: &[u8],
    at: DateTime<Utc>,
) -> anyhow::Result<Event> {
    let user = format!("user-{}", rng.random_range(1..=500));
    let mut follow = message.new_instance();
    let mut set = |name: &str, value: ReflectValueBox| -> anyhow::Result<()> {
        let field = message
            .field_by_name(name)
            .ok_or_else(|| anyhow::anyhow!("the schema's message has no field `{name}`"))?;
        field.set_singular_field(&mut *follow, value);
        Ok(())
    };
    set(
        "follow_id",
        ReflectValueBox::String(uuid::Uuid::new_v4().to_string()),
    )?;
    set("user_id", ReflectValueBox::String(user.clone()))?;
    set(
        "artist_id",
        ReflectValueBox::String(format!("artist-{}", rng.random_range(1..=60))),
    )?;
    set("notifications", ReflectValueBox::Bool(rng.random_bool(0.5)))?;
    if let Some(origin) = message.nested_enums().next() {
        set(
            "origin",
            ReflectValueBox::Enum(origin, rng.random_range(1..=3)),
        )?;
    }
    let mut payload = frame.to_vec();
    payload.extend(follow.write_to_bytes_dyn()?);
    Ok(Event {
        product: FOLLOWS,
        key: user,
        payload,
        ty: "com.example.artists.artist.followed",
        source: "/artists/follow-service",
        content_type: "application/protobuf",
        time: at,
    })
}

/// Sends `events` to their ingress topics and counts the acknowledged ones.
async fn send(
    producer: &FutureProducer,
    events: Vec<Event>,
    acked: &mut HashMap<&'static str, u64>,
) {
    let mut pending = Vec::new();
    for event in events {
        let id = uuid::Uuid::new_v4().to_string();
        let time = event
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let headers = [
            ("ce_specversion", "1.0"),
            ("ce_id", id.as_str()),
            ("ce_source", event.source),
            ("ce_type", event.ty),
            ("ce_time", time.as_str()),
            ("content-type", event.content_type),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        });
        let topic = format!("{}.ingress", event.product);
        let record = FutureRecord::to(&topic)
            .key(&event.key)
            .payload(&event.payload)
            .headers(headers);
        match producer.send_result(record) {
            Ok(delivery) => pending.push((event.product, delivery)),
            Err((error, _)) => {
                tracing::warn!(%error, product = event.product, "demo event not sent")
            }
        }
    }
    for (product, delivery) in pending {
        match delivery.await {
            Ok(Ok(_)) => *acked.entry(product).or_default() += 1,
            Ok(Err((error, _))) => tracing::warn!(%error, product, "demo event not delivered"),
            Err(_) => tracing::warn!(product, "demo event delivery cancelled"),
        }
    }
}
