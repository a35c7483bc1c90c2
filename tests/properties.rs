//! Property tests of every decoder of untrusted input, bounded in time (a few hundred cases each):
//! the Confluent wire format, the CloudEvents Kafka binding, the contract check of a whole record
//! (headers, frame, Avro payload, rules), JSON → Avro, descriptors and CEL rules. Each either
//! round-trips or refuses with an error; none panics.

mod common;

use std::sync::Arc;

use meshline::{
    binding::kafka::Record,
    codec::{json::from_json, wire},
    contract::{Contract, WriterSchema},
    product::{Descriptor, Product},
};
use proptest::prelude::*;

fn player() -> Product {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    meshline::formats::load_catalog(&dir)
        .unwrap()
        .get("player.play-events")
        .unwrap()
        .clone()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, nested a few levels.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Headers a producer may send: the valid binary-mode set, each header kept (mostly),
/// replaced by arbitrary bytes (also non-UTF-8) or dropped, plus arbitrary others.
fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let valid: [(&str, &[u8]); 7] = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"play-1"),
        ("ce_source", b"/player/web"),
        ("ce_type", b"com.example.player.track.played"),
        ("ce_time", b"2026-11-25T10:00:00Z"),
        ("ce_subject", b"user-7"),
        ("content-type", b"application/avro"),
    ];
    let each: Vec<_> = valid
        .iter()
        .map(|(name, value)| {
            let (name, value) = (name.to_string(), value.to_vec());
            prop_oneof![
                12 => Just(Some(value)),
                2 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
                1 => Just(None),
            ]
            .prop_map(move |v| v.map(|v| (name.clone(), v)))
        })
        .collect();
    let others = prop::collection::vec(
        ("[a-z_]{1,16}", prop::collection::vec(any::<u8>(), 0..24)),
        0..4,
    );
    (each, others).prop_map(|(each, others)| each.into_iter().flatten().chain(others).collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_wire_format_round_trips(id in any::<u32>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let framed = wire::encode(id, &body);
        let (got, rest) = wire::decode(&framed).unwrap();
        prop_assert_eq!(got, id);
        prop_assert_eq!(rest, &body[..]);
    }

    #[test]
    fn any_bytes_decode_as_a_frame_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        match wire::decode(&bytes) {
            Ok((_, rest)) => prop_assert!(bytes[0] == 0 && rest.len() == bytes.len() - 5),
            Err(_) => prop_assert!(bytes.len() < 5 || bytes[0] != 0),
        }
    }

    #[test]
    fn any_record_decodes_as_an_event_or_an_error(
        headers in headers(),
        key in prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        payload in prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        let record = Record { key, headers, payload };
        if let Ok(event) = record.to_event() {
            // what decodes encodes again, and decodes to the same event
            let again = Record::from_event(event.clone()).unwrap().to_event().unwrap();
            prop_assert_eq!(again, event);
        }
    }

    #[test]
    fn the_contract_check_gives_a_verdict_on_any_record(
        headers in headers(),
        id in prop_oneof![Just(1u32), any::<u32>()],
        body in prop::collection::vec(any::<u8>(), 0..96),
        framed in any::<bool>(),
    ) {
        let product = player();
        let contract = Contract::from_product(&product).unwrap();
        let schema = Arc::new(WriterSchema::new(Arc::new(product.schema.clone())));
        let payload = if framed { wire::encode(id, &body) } else { body };
        let record = Record { key: None, headers, payload: Some(payload) };
        // accepted or refused with a reason: either way, no panic
        let _ = contract.check_record(&record, |i| (i == 1).then(|| schema.clone()));
    }

    #[test]
    fn any_json_resolves_against_the_schema_or_is_refused(json in json()) {
        let product = player();
        let value = from_json(&json);
        let _ = value.resolve(&product.schema);
    }

    #[test]
    fn any_yaml_text_is_a_descriptor_or_an_error(text in "[ -~\n]{0,200}") {
        let _ = serde_norway::from_str::<Descriptor>(&text);
    }

    #[test]
    fn any_rule_expression_compiles_and_evaluates_or_is_refused(expression in prop_oneof![
        "[a-z_.()<>=!&|+*/%0-9 '\"\\[\\]]{0,40}",
        Just("message.duration_ms >= 0 && size(message.country) == 2".to_owned()),
        "message\\.[a-z_]{1,12} [<>=!]= [0-9]{1,3}",
    ]) {
        let mut product = player();
        product.descriptor.rules[0].expression = expression;
        if let Ok(contract) = Contract::from_product(&product) {
            let schema = WriterSchema::new(Arc::new(product.schema.clone()));
            let value = apache_avro::to_value(common::play(1_000)).unwrap();
            let body = apache_avro::writer::datum::GenericDatumWriter::builder(&product.schema)
                .build()
                .and_then(|w| w.write_value_to_vec(value))
                .unwrap();
            if let Ok(message) = contract.rule_input(&schema, &body) {
                let _ = contract.check_rules(&message);
            }
        }
    }

    #[test]
    fn the_sdk_encoder_writes_the_bytes_apache_avro_writes(
        strings in prop::collection::vec(".{0,24}", 6),
        numbers in prop::collection::vec(any::<i64>(), 3),
        small in any::<i32>(),
        flags in prop::collection::vec(any::<bool>(), 3),
        picks in prop::collection::vec(0..5usize, 2),
        genres in prop::collection::vec("[a-z-]{0,12}", 0..20),
        floats in (any::<f32>(), any::<f64>()),
        map in prop::collection::btree_map(".{0,8}", any::<i64>(), 0..6),
        bytes in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        use meshline::demo::events::{ArtistProfileChanged, Device, LabelOnboarded, PlayEvent, Tier};
        let devices = [Device::Mobile, Device::Desktop, Device::Web, Device::Speaker, Device::Car];
        let tiers = [Tier::Indie, Tier::Major, Tier::Sublabel];
        let play = PlayEvent {
            play_id: strings[0].clone(),
            user_id: strings[1].clone(),
            track_id: strings[2].clone(),
            artist_id: strings[3].clone(),
            device: devices[picks[0]],
            country: strings[4].clone(),
            started_at: numbers[0],
            duration_ms: numbers[1],
            completed: flags[0],
            context: flags[1].then(|| strings[5].clone()),
        };
        let label = LabelOnboarded {
            label_id: strings[0].clone(),
            name: strings[1].clone(),
            country: strings[2].clone(),
            tier: tiers[picks[1] % tiers.len()],
            catalog_size: small,
            distributor: flags[2].then(|| strings[3].clone()),
            onboarded_at: numbers[2],
        };
        let artist = ArtistProfileChanged {
            artist_id: strings[0].clone(),
            name: strings[1].clone(),
            genres,
            country: strings[2].clone(),
            verified: flags[0],
            followers: numbers[0],
            changed_at: numbers[1],
        };
        let other = Kinds {
            ratio: floats.0,
            score: floats.1,
            counts: map.into_iter().collect(),
            blob: bytes,
            inner: Inner { at: numbers[2], note: flags[1].then(|| strings[4].clone()) },
            maybe: flags[2].then_some(numbers[0]),
        };
        same_bytes(&play)?;
        same_bytes(&label)?;
        same_bytes(&artist)?;
        same_bytes(&other)?;
    }
}

/// More Avro kinds than the demo events have: floats, a map, bytes, a nested record, a union
/// of a long.
#[derive(serde::Serialize, apache_avro::AvroSchema)]
struct Kinds {
    ratio: f32,
    score: f64,
    counts: std::collections::HashMap<String, i64>,
    #[serde(with = "apache_avro::serde::bytes")]
    #[avro(with)]
    blob: Vec<u8>,
    inner: Inner,
    maybe: Option<i64>,
}

#[derive(serde::Serialize, apache_avro::AvroSchema)]
struct Inner {
    at: i64,
    note: Option<String>,
}

/// `WriterSchema::encode` (the SDK's encoder) and `apache-avro` write the same bytes.
fn same_bytes<T: serde::Serialize + apache_avro::AvroSchema>(
    value: &T,
) -> Result<(), TestCaseError> {
    let schema = T::get_schema();
    let expected = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .and_then(|w| w.write_ser_to_vec(value))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let writer = WriterSchema::new(Arc::new(schema));
    prop_assert!(writer.is_fast(), "serde_avro_fast takes the schema");
    let mut got = vec![9u8];
    writer
        .encode(value, &mut got)
        .map_err(TestCaseError::fail)?;
    prop_assert_eq!(&got[..1], &[9u8][..], "appends");
    prop_assert_eq!(&got[1..], &expected[..]);
    Ok(())
}
