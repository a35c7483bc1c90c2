//! HTTP ingress: `POST /v1/products/{id}/events` with the CloudEvents HTTP binding in binary,
//! structured (`application/cloudevents+json`) and batch (`application/cloudevents-batch+json`)
//! modes. Events are checked against the product's contract before anything is written; a
//! request is all or nothing: one refused event refuses the request (400, with a reason per
//! event) and writes none. Accepted events go to the product's `.ingress` topic, where the stream
//! gateway checks them again and writes them exactly once; the answer is 202 only after the
//! broker acknowledged every event.
//!
//! Statuses: 202 written; 400 refused (per-event reasons); 401 no or unknown bearer token; 403
//! the token's principal may not write into this product; 404 unknown product; 413 body over
//! the limit; 415 unknown content type; 429 the producer queue is too full to take the request
//! (nothing written; retry later); 503 the broker did not acknowledge in time (retry; some events
//! of the request may have been written: with dedupe on, a retry does not write them twice).

use std::{
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use apache_avro::{types::Value, writer::datum::GenericDatumWriter};
use axum::{
    extract::{Path, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use cloudevents::{event::Data, AttributesReader, AttributesWriter, Event};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use serde_json::{json, Value as JsonValue};

use super::{contracts::Contracts, metrics::Metrics};
use crate::auth::Tokens;
use governor::{
    clock::{Clock as _, DefaultClock},
    DefaultKeyedRateLimiter, Quota, RateLimiter,
};
use meshline_sdk::kafka::RecordExt as _;
use tracing::Instrument as _;

use crate::{
    binding::{kafka::Record, new_traceparent, TRACEPARENT},
    broker,
    codec::{json::from_json, strict::check_unique_keys, wire},
    contract::{Reason, Rejection},
    dedup::{Claim, Dedup},
    product::{Catalog, OnFailure, Product, SchemaFormat},
};

/// Settings of the HTTP ingress.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long to wait for the broker to acknowledge a request's events.
    pub ack_timeout: Duration,
    /// Drop events whose (`source`, `id`) was written within this window (`None`: off).
    pub dedupe_window: Option<Duration>,
    /// Most events queued in the producer; a request that would go over is refused with 429
    /// before anything is written (match the producer's `queue.buffering.max.messages`).
    pub max_queued: usize,
    /// Events per second each principal (domain) may send, also the largest burst (`None`: no
    /// limit); a request over it is refused with 429 before anything is written.
    pub rate_limit: Option<NonZeroU32>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            ack_timeout: Duration::from_secs(10),
            dedupe_window: None,
            max_queued: 100_000,
            rate_limit: None,
        }
    }
}

/// The HTTP ingress; cheap to clone.
#[derive(Clone)]
pub struct Ingress {
    inner: Arc<Inner>,
}

struct Inner {
    config: IngressConfig,
    catalog: Arc<Catalog>,
    contracts: Arc<Contracts>,
    tokens: Tokens,
    producer: FutureProducer,
    registry_url: String,
    dedupe: Option<Mutex<Dedup>>,
    metrics: Metrics,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Ingress {
    /// An ingress writing with `producer` (an idempotent one, see
    /// [`crate::broker::producer_config`]).
    pub fn new(
        config: IngressConfig,
        catalog: Arc<Catalog>,
        contracts: Arc<Contracts>,
        tokens: Tokens,
        producer: FutureProducer,
        registry_url: &str,
        metrics: Metrics,
    ) -> Self {
        let dedupe = config.dedupe_window.map(|w| Mutex::new(Dedup::new(w)));
        let limiter = config
            .rate_limit
            .map(|n| RateLimiter::keyed(Quota::per_second(n)));
        Self {
            inner: Arc::new(Inner {
                config,
                catalog,
                contracts,
                tokens,
                producer,
                registry_url: registry_url.trim_end_matches('/').to_owned(),
                dedupe,
                metrics,
                limiter,
            }),
        }
    }
}

/// The ingress routes.
pub fn router(ingress: Ingress) -> Router {
    Router::new()
        .route("/v1/products/{id}/events", post(post_events))
        .with_state(ingress)
}

/// A refused request.
struct Refusal {
    status: StatusCode,
    body: JsonValue,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

async fn post_events(
    State(ingress): State<Ingress>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let product = match ingress.inner.catalog.require(&id) {
        Ok(product) => product,
        Err(e) => return Refusal::new(StatusCode::NOT_FOUND, e.to_string()).into_response(),
    };
    let response = accept(&ingress, product, request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    // the availability SLI: requests for a known product, by status
    ingress
        .inner
        .metrics
        .ingress_request(product.id(), response.status().as_u16());
    response
}

/// Checks and writes one request's events.
async fn accept(
    ingress: &Ingress,
    product: &Product,
    request: Request,
) -> Result<Response, Refusal> {
    let inner = &ingress.inner;
    let principal = authorize(&inner.tokens, product, request.headers())?;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, inner.config.max_body_bytes)
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is over the limit of {} bytes; send fewer events per batch",
                    inner.config.max_body_bytes
                ),
            )
        })?;
    let mut events = parse(&parts.headers, body.to_vec())?;
    ingress.within_rate(&principal, events.len())?;
    // the CloudEvents distributed-tracing extension: an event's own trace context, else the
    // request's W3C `traceparent` header, else a new trace
    let carried = parts
        .headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|t| is_traceparent(t));
    let span = tracing::info_span!(
        "ingress_request",
        product = product.id(),
        events = events.len(),
        traceparent = carried
    );
    // exported, the request's span continues the caller's trace, and events without a trace
    // context of their own are its children
    if let Some(carried) = carried {
        crate::telemetry::continue_trace(&span, carried);
    }
    let from_span = crate::telemetry::traceparent_of(&span);
    for event in &mut events {
        if event.extension(TRACEPARENT).is_none() {
            let traceparent = from_span
                .clone()
                .or_else(|| carried.map(str::to_owned))
                .unwrap_or_else(new_traceparent);
            event.set_extension(TRACEPARENT, traceparent);
        }
    }
    let written = async {
        let records = ingress.check(product, events)?;
        // on a task of its own: a client that hangs up does not cut a write short, so every
        // claim it made is confirmed or released
        let (writer, topic) = (ingress.clone(), product.topics().ingress);
        tokio::spawn(async move { writer.write(topic, records).await }.in_current_span())
            .await
            .map_err(|e| {
                Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the write stopped: {e}; retry"),
                )
            })?
    }
    .instrument(span)
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": written.accepted, "duplicates": written.duplicates })),
    )
        .into_response())
}

/// Checks the bearer token and that its principal may write into `product`.
fn authorize(tokens: &Tokens, product: &Product, headers: &HeaderMap) -> Result<String, Refusal> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::UNAUTHORIZED,
                "send `Authorization: Bearer TOKEN` with your domain's token",
            )
        })?;
    let principal = tokens
        .principal(token.trim())
        .ok_or_else(|| Refusal::new(StatusCode::UNAUTHORIZED, "the bearer token is not known"))?;
    let descriptor = &product.descriptor;
    let allowed = if descriptor.access.producers.is_empty() {
        principal == descriptor.domain
    } else {
        descriptor.access.producers.iter().any(|p| p == principal)
    };
    if allowed {
        Ok(principal.to_owned())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!(
                "principal `{principal}` may not write into {} (domain {}); a domain writes only its own products",
                descriptor.id, descriptor.domain
            ),
        ))
    }
}

/// Whether `value` is a W3C trace context of version 00 (`00-<32 hex>-<16 hex>-<2 hex>`).
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), [v, t, p, f] if *v == "00" && hex(t, 32) && hex(p, 16) && hex(f, 2))
}

/// The events of a request, by its content mode.
fn parse(headers: &HeaderMap, body: Vec<u8>) -> Result<Vec<Event>, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bad = |e: &dyn std::fmt::Display| {
        Refusal::new(StatusCode::BAD_REQUEST, format!("not a CloudEvent: {e}"))
    };
    let structured = content_type.starts_with("application/cloudevents+json");
    let batch = content_type.starts_with("application/cloudevents-batch+json");
    if structured || batch {
        check_unique_keys(&body).map_err(|e| bad(&e))?;
    }
    if batch {
        serde_json::from_slice(&body).map_err(|e| bad(&e))
    } else if structured {
        serde_json::from_slice(&body)
            .map(|e| vec![e])
            .map_err(|e| bad(&e))
    } else if headers.contains_key("ce-specversion") {
        cloudevents::binding::http::to_event(headers, body)
            .map(|e| vec![e])
            .map_err(|e| bad(&e))
    } else {
        Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send CloudEvents: binary mode (ce-* headers), application/cloudevents+json or application/cloudevents-batch+json",
        ))
    }
}

struct Written {
    accepted: usize,
    duplicates: usize,
}

impl Ingress {
    /// Takes `events` from `principal`'s rate limit, or refuses the request (429).
    fn within_rate(&self, principal: &str, events: usize) -> Result<(), Refusal> {
        let (Some(limiter), Some(limit)) = (&self.inner.limiter, self.inner.config.rate_limit)
        else {
            return Ok(());
        };
        let Some(n) = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        let refuse = |message: String| Refusal::new(StatusCode::TOO_MANY_REQUESTS, message);
        match limiter.check_key_n(&principal.to_owned(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refuse(format!(
                "domain `{principal}` is over its rate limit of {limit} events/s; retry in {} ms",
                not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_millis()
                    .max(1)
            ))),
            Err(_) => Err(refuse(format!(
                "a batch of {events} events is over the rate limit of {limit} events/s per domain; send smaller batches"
            ))),
        }
    }

    /// Each event as an ingress record, or every refusal with its index.
    fn check(
        &self,
        product: &Product,
        events: Vec<Event>,
    ) -> Result<Vec<(Event, Record)>, Refusal> {
        let registered = self.inner.contracts.get(product.id()).ok_or_else(|| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the gateway has no contract for {}", product.id()),
            )
        })?;
        let mut records = Vec::with_capacity(events.len());
        let mut refusals = Vec::new();
        for (index, mut event) in events.into_iter().enumerate() {
            let id = event.id().to_owned();
            let checked = self.to_avro(&registered, &mut event).and_then(|()| {
                let record = Record::from_event(event.clone()).map_err(|e| Rejection {
                    reason: Reason::MissingAttribute,
                    rule: None,
                    message: e.to_string(),
                    on_failure: OnFailure::Dlq,
                })?;
                // a rule marked `none` passes here: the gateway's check warns on the way out
                registered
                    .contract
                    .check_record(&record, |id| registered.schema(id))
                    .map(|_| record)
            });
            match checked {
                Ok(record) => records.push((event, record)),
                Err(r) => refusals.push(json!({
                    "index": index,
                    "id": id,
                    "reason": r.reason.code(),
                    "rule": r.rule,
                    "message": r.message,
                })),
            }
        }
        if refusals.is_empty() {
            Ok(records)
        } else {
            Err(Refusal {
                status: StatusCode::BAD_REQUEST,
                body: json!({
                    "error": format!("{} of {} event(s) break the contract of {}; nothing was written", refusals.len(), refusals.len() + records.len(), product.id()),
                    "events": refusals,
                }),
            })
        }
    }

    /// Replaces JSON `data` by the Avro encoding of the product's latest schema, framed (for a
    /// JSON Schema product, the JSON document after the latest schema id); a framed payload in
    /// the product's format (`application/avro`, `application/protobuf`, ...) is kept as sent.
    fn to_avro(
        &self,
        registered: &super::contracts::Registered,
        event: &mut Event,
    ) -> Result<(), Rejection> {
        let refuse = |reason, message: String| Rejection {
            reason,
            rule: None,
            message,
            on_failure: OnFailure::Dlq,
        };
        let content_type = event
            .datacontenttype()
            .unwrap_or("application/json")
            .to_owned();
        let (_, _, data) = event.take_data();
        let format = registered.contract.format;
        // JSON data may come framed (the magic byte first) or as the document itself
        let framed = |bytes: &[u8]| {
            format.accepts(&content_type)
                && (format != SchemaFormat::Json || bytes.first() == Some(&0))
        };
        let json = match data {
            None => return Err(refuse(Reason::BadPayload, "the event has no data".into())),
            Some(Data::Binary(bytes)) if framed(&bytes) => {
                self.set_payload(event, registered, bytes);
                return Ok(());
            }
            Some(Data::Json(json)) => json,
            Some(Data::Binary(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|e| refuse(Reason::BadPayload, format!("data is not JSON: {e}")))?,
            Some(Data::String(text)) => serde_json::from_str(&text)
                .map_err(|e| refuse(Reason::BadPayload, format!("data is not JSON: {e}")))?,
        };
        if !(content_type.starts_with("application/json") || content_type.ends_with("+json")) {
            return Err(refuse(
                Reason::ContentType,
                format!(
                    "datacontenttype `{content_type}` is neither application/json nor {}",
                    format.content_type()
                ),
            ));
        }
        match format {
            SchemaFormat::Avro => {}
            SchemaFormat::Json => {
                let framed = wire::encode(registered.latest_id, json.to_string().as_bytes());
                self.set_payload(event, registered, framed);
                return Ok(());
            }
            SchemaFormat::Protobuf => {
                return Err(refuse(
                    Reason::ContentType,
                    format!(
                        "{} takes Protobuf events as a Protobuf serializer frames them (datacontenttype application/protobuf, binary data), not JSON",
                        registered.contract.product
                    ),
                ))
            }
        }
        let schema = &registered.contract.schema;
        let value: Value = from_json(&json).resolve(schema).map_err(|e| {
            refuse(
                Reason::BadPayload,
                format!(
                    "data does not match the schema of {}: {e}",
                    registered.contract.product
                ),
            )
        })?;
        let body = GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .map_err(|e| refuse(Reason::BadPayload, format!("data cannot be encoded: {e}")))?;
        let framed = wire::encode(registered.latest_id, &body);
        self.set_payload(event, registered, framed);
        Ok(())
    }

    /// Sets the event's data to a framed payload in the product's format.
    fn set_payload(
        &self,
        event: &mut Event,
        registered: &super::contracts::Registered,
        payload: Vec<u8>,
    ) {
        let id = wire::decode(&payload).map_or(registered.latest_id, |(id, _)| id);
        event.set_data(
            registered.contract.format.content_type(),
            Data::Binary(payload),
        );
        if let Ok(url) = url::Url::parse(&format!("{}/schemas/ids/{id}", self.inner.registry_url)) {
            event.set_dataschema(Some(url));
        }
    }

    /// Writes `records` to the product's ingress topic and waits for the broker's
    /// acknowledgements. With dedupe on, each event's (`source`, `id`) is claimed before it is
    /// produced: a repeat of a written event is counted as a duplicate, one of an event still
    /// being written is refused (503, retry), and an event that could not be written is released
    /// for a retry. Acknowledgements that come after the request gave up (503) still confirm or
    /// release their events.
    async fn write(
        &self,
        topic: String,
        records: Vec<(Event, Record)>,
    ) -> Result<Written, Refusal> {
        let mut fresh = Vec::with_capacity(records.len());
        let mut duplicates = 0;
        if let Some(dedupe) = &self.inner.dedupe {
            let mut dedupe = lock(dedupe);
            let mut in_flight = None;
            for (event, record) in records {
                match dedupe.claim(&scoped(&topic, event.source().as_str()), event.id()) {
                    Claim::New => fresh.push((event, record)),
                    Claim::Written => duplicates += 1,
                    Claim::InFlight => in_flight = Some(event.id().to_owned()),
                }
            }
            if let Some(id) = in_flight {
                for (event, _) in &fresh {
                    dedupe.release(&scoped(&topic, event.source().as_str()), event.id());
                }
                return Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("event `{id}` is still being written by an earlier request; retry after a moment"),
                ));
            }
        } else {
            fresh = records;
        }
        let claims: Vec<(String, String)> = fresh
            .iter()
            .map(|(event, _)| {
                (
                    scoped(&topic, event.source().as_str()),
                    event.id().to_owned(),
                )
            })
            .collect();
        let queued = usize::try_from(self.inner.producer.in_flight_count()).unwrap_or(0);
        if queued + fresh.len() > self.inner.config.max_queued {
            self.release(&claims);
            return Err(Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "the gateway has {queued} event(s) waiting for the broker; retry after a moment"
                ),
            ));
        }
        let mut deliveries = Vec::with_capacity(fresh.len());
        let deadline = tokio::time::Instant::now() + self.inner.config.ack_timeout;
        for (_, record) in &fresh {
            let headers = record.owned_headers();
            let mut future = FutureRecord::<[u8], [u8]>::to(&topic).headers(headers);
            if let Some(key) = &record.key {
                future = future.key(key.as_slice());
            }
            if let Some(payload) = &record.payload {
                future = future.payload(payload.as_slice());
            }
            // requests racing for the last places wait for room rather than write half a batch
            match broker::while_queue_full_async(
                &self.inner.producer,
                future,
                Some(deadline),
                FutureProducer::send_result,
            )
            .await
            {
                Ok(delivery) => deliveries.push(delivery),
                Err(e) => {
                    // those handed over settle on their own; the others were never produced
                    let (sent, unsent) = claims.split_at(deliveries.len());
                    self.release(unsent);
                    tokio::spawn(settle(self.inner.clone(), sent.to_vec(), deliveries));
                    return Err(Refusal::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("cannot write to {topic}: {e}; retry"),
                    ));
                }
            }
        }
        let settled = tokio::spawn(settle(self.inner.clone(), claims, deliveries));
        let refusal = match tokio::time::timeout_at(deadline, settled).await {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(message))) => Some(message),
            Ok(Err(_)) => Some("the producer stopped; retry".to_owned()),
            Err(_) => Some(format!(
                "the broker did not acknowledge within {:?}; retry",
                self.inner.config.ack_timeout
            )),
        };
        if let Some(message) = refusal {
            return Err(Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message));
        }
        Ok(Written {
            accepted: fresh.len(),
            duplicates,
        })
    }

    /// Releases the claims of events that were not produced.
    fn release(&self, claims: &[(String, String)]) {
        if let Some(dedupe) = &self.inner.dedupe {
            let mut dedupe = lock(dedupe);
            for (source, id) in claims {
                dedupe.release(source, id);
            }
        }
    }
}

/// Waits for each delivery and confirms its event's claim (written) or releases it (not
/// written); the first failure, for the answer.
async fn settle(
    inner: Arc<Inner>,
    claims: Vec<(String, String)>,
    deliveries: Vec<rdkafka::producer::DeliveryFuture>,
) -> Result<(), String> {
    let mut failure = None;
    for ((source, id), delivery) in claims.iter().zip(deliveries) {
        let written = match delivery.await {
            Ok(Ok(_)) => true,
            Ok(Err((e, _))) => {
                failure
                    .get_or_insert_with(|| format!("the broker did not take an event: {e}; retry"));
                false
            }
            Err(_) => {
                failure.get_or_insert_with(|| "the producer stopped; retry".to_owned());
                false
            }
        };
        if let Some(dedupe) = &inner.dedupe {
            let mut dedupe = lock(dedupe);
            if written {
                dedupe.confirm(source, id);
            } else {
                dedupe.release(source, id);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The source an event is deduplicated under: its product's ingress topic and its CloudEvents
/// source (a topic name has no space), so that no product's events, whatever source they claim,
/// can make another product's events be taken for repeats.
fn scoped(topic: &str, source: &str) -> String {
    format!("{topic} {source}")
}

fn lock(dedupe: &Mutex<Dedup>) -> std::sync::MutexGuard<'_, Dedup> {
    dedupe
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress").finish_non_exhaustive()
    }
}
