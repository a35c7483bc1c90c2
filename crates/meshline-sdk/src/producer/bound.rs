//! A product's registered contract bound to the events a producer sends: where they go, and
//! how each is encoded, checked and framed as a CloudEvent (no I/O).

use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use apache_avro::types::Value;
use chrono::Utc;
use uuid::Uuid;

use super::{builder::Target, Error, Result};
use crate::{
    codec::wire,
    contract::{Contract, WriterSchema},
    framed::{EventId, Framed},
    product::Topics,
    DomainEvent,
};

/// The CloudEvents attributes of one event, besides those the producer sets.
pub(super) struct Attributes<'a> {
    pub(super) id: Option<String>,
    pub(super) ty: &'a str,
    pub(super) subject: Option<String>,
    pub(super) key: Option<String>,
    pub(super) time: Option<chrono::DateTime<Utc>>,
    pub(super) traceparent: Option<String>,
}

/// A product's contract bound to one event type.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) contract: Contract,
    /// The contract's schema, prepared for reading back what the rules check.
    pub(super) schema: WriterSchema,
    pub(super) schema_id: u32,
    pub(super) topic: String,
    pub(super) source: String,
    /// `ce_dataschema`, parsed once rather than per event.
    pub(super) dataschema: url::Url,
    /// The next event's buffer: the last one's size and some room.
    pub(super) payload_hint: AtomicUsize,
    /// When the contract was read from the registry.
    fetched: Instant,
    /// How long after `fetched` (ns) the registry is asked again for the latest contract.
    refresh_after: AtomicU64,
    /// Whether a newer contract is being read.
    refreshing: AtomicBool,
}

/// How often a producer reads its products' contracts again: a new version (a tightened or
/// relaxed rule) takes effect in the producer's own checks within this time.
pub(super) const REFRESH: Duration = Duration::from_secs(5);

impl Bound {
    /// `contract`, registered as `schema_id` in the registry at `registry_url`, bound for
    /// events from `source` (default: the product's) sent to `target`.
    pub(super) fn new(
        contract: Contract,
        schema_id: u32,
        registry_url: &str,
        source: Option<&str>,
        target: Target,
    ) -> Result<Self> {
        let product = &contract.product;
        let source = source.map_or_else(|| contract.source.clone(), str::to_owned);
        let topics = Topics::of(product);
        let dataschema = format!("{registry_url}/schemas/ids/{schema_id}");
        let dataschema = url::Url::parse(&dataschema).map_err(|e| Error::Encode {
            product: product.clone(),
            message: format!("the registry URL makes a bad dataschema {dataschema}: {e}"),
        })?;
        Ok(Self {
            schema: WriterSchema::new(contract.schema.clone()),
            topic: match target {
                Target::Ingress => topics.ingress,
                Target::Direct => topics.product,
            },
            contract,
            schema_id,
            source,
            dataschema,
            payload_hint: AtomicUsize::new(256),
            fetched: Instant::now(),
            refresh_after: AtomicU64::new(nanos(REFRESH)),
            refreshing: AtomicBool::new(false),
        })
    }

    /// Whether the contract is due to be read again and no one is reading it: the caller
    /// then reads it (and calls [`Bound::refresh_failed`] if that fails).
    pub(super) fn claim_refresh(&self) -> bool {
        nanos(self.fetched.elapsed()) >= self.refresh_after.load(Ordering::Relaxed)
            && !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// Reading the contract again failed: the current one stays, and the next try is a
    /// [`REFRESH`] later.
    pub(super) fn refresh_failed(&self) {
        self.refresh_after
            .store(nanos(self.fetched.elapsed() + REFRESH), Ordering::Relaxed);
        self.refreshing.store(false, Ordering::Release);
    }

    /// Encodes `event` with the contract's schema and frames it: Confluent's header, the rules
    /// checked, a CloudEvent of at most `max_event_bytes`.
    pub(super) fn encode<T: DomainEvent>(
        &self,
        event: &T,
        max_event_bytes: usize,
    ) -> Result<Framed<'_>> {
        let mut payload = Vec::with_capacity(self.payload_hint.load(Ordering::Relaxed));
        wire::encode_header(self.schema_id, &mut payload);
        self.schema
            .encode(event, &mut payload)
            .map_err(|message| Error::Encode {
                product: self.contract.product.clone(),
                message,
            })?;
        // room for a somewhat longer next event: growing the buffer costs a copy
        self.payload_hint
            .store(payload.len() + payload.len() / 4 + 16, Ordering::Relaxed);
        let value = if self.contract.rules.is_empty() {
            None
        } else {
            Some(
                self.contract
                    .rule_input_of(&self.schema, event, &payload[wire::HEADER_LEN..])
                    .map_err(|message| Error::Encode {
                        product: self.contract.product.clone(),
                        message,
                    })?,
            )
        };
        let attributes = Attributes {
            id: event.id(),
            ty: T::TYPE,
            subject: event.subject(),
            key: event.partition_key(),
            time: event.time(),
            traceparent: event
                .traceparent()
                .or_else(|| crate::trace::send_context(T::PRODUCT)),
        };
        self.frame(attributes, payload, value.as_ref(), max_event_bytes)
    }

    /// Checks the rules on `value` (the decoded payload) and wraps the framed payload in a
    /// CloudEvent.
    pub(super) fn frame<'b>(
        &'b self,
        attributes: Attributes<'b>,
        payload: Vec<u8>,
        value: Option<&Value>,
        max_event_bytes: usize,
    ) -> Result<Framed<'b>> {
        let product = &self.contract.product;
        if let Some(value) = value {
            let warned =
                self.contract
                    .check_rules(value)
                    .map_err(|(violation, _)| Error::Contract {
                        product: product.clone(),
                        violation,
                    })?;
            // rules marked `on_failure: none` warn and let the event go, as in the gateway
            if !warned.is_empty() {
                tracing::warn!(product = %product, rules = ?warned, "event failed rules marked `none`; sending it all the same");
            }
        }
        if payload.len() > max_event_bytes {
            return Err(Error::TooLarge {
                product: product.clone(),
                size: payload.len(),
                max: max_event_bytes,
            });
        }
        Ok(Framed {
            id: attributes
                .id
                .map_or_else(|| EventId::New(Uuid::new_v4()), EventId::Given),
            source: &self.source,
            ty: attributes.ty,
            dataschema: &self.dataschema,
            subject: attributes.subject,
            time: attributes.time.unwrap_or_else(Utc::now),
            key: attributes.key,
            traceparent: attributes.traceparent,
            data: payload,
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::AvroSchema;

    #[derive(serde::Serialize, AvroSchema)]
    #[avro(namespace = "com.example.labels")]
    struct LabelOnboarded {
        label_id: String,
        artists: i32,
    }

    impl DomainEvent for LabelOnboarded {
        const PRODUCT: &'static str = "labels.onboarded";
        const TYPE: &'static str = "com.example.labels.label.onboarded";
        fn partition_key(&self) -> Option<String> {
            Some(self.label_id.clone())
        }
    }

    fn bound(target: Target, source: Option<&str>) -> Bound {
        let contract = Contract::from_registered(
            LabelOnboarded::PRODUCT,
            std::sync::Arc::new(LabelOnboarded::get_schema()),
            Some(&serde_json::json!({"properties": {
                "cloudevents.types": LabelOnboarded::TYPE,
                "cloudevents.source": "/labels"}})),
            Some(
                &serde_json::json!({"domainRules": [{"name": "has_artists", "kind": "CONDITION",
                "type": "CEL", "mode": "WRITE", "expr": "message.artists > 0",
                "onFailure": "DLQ"}]}),
            ),
        )
        .unwrap();
        Bound::new(contract, 7, "http://registry:8081", source, target).unwrap()
    }

    fn label(artists: i32) -> LabelOnboarded {
        LabelOnboarded {
            label_id: "label-1".into(),
            artists,
        }
    }

    #[test]
    fn a_bound_event_goes_to_its_products_ingress_with_the_registered_schema() {
        let ingress = bound(Target::Ingress, None);
        assert_eq!(ingress.topic, "labels.onboarded.ingress");
        assert_eq!(ingress.source, "/labels");
        assert_eq!(
            ingress.dataschema.as_str(),
            "http://registry:8081/schemas/ids/7"
        );
        let direct = bound(Target::Direct, Some("/labels/onboarding"));
        assert_eq!(direct.topic, "labels.onboarded");
        assert_eq!(direct.source, "/labels/onboarding");
    }

    #[test]
    fn an_event_is_framed_with_confluents_header_and_its_attributes() {
        let bound = bound(Target::Ingress, None);
        let framed = bound.encode(&label(3), 1_000).unwrap();
        assert_eq!(
            &framed.data[..5],
            &[0, 0, 0, 0, 7],
            "magic byte and schema id 7"
        );
        assert_eq!(framed.ty, LabelOnboarded::TYPE);
        assert_eq!(framed.key.as_deref(), Some("label-1"));
        assert_eq!(framed.source, "/labels");
    }

    #[test]
    fn an_event_that_breaks_a_rule_or_the_size_limit_is_refused_before_sending() {
        let bound = bound(Target::Ingress, None);
        let broken = bound.encode(&label(0), 1_000).unwrap_err();
        assert!(
            matches!(&broken, Error::Contract { violation, .. } if violation.to_string().contains("has_artists")),
            "{broken}"
        );
        let large = bound.encode(&label(3), 8).unwrap_err();
        assert!(matches!(large, Error::TooLarge { max: 8, .. }), "{large}");
    }
}
