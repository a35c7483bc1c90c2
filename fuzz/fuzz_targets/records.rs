//! Ingress records as the gateway reads them: headers, key and payload decoded through the
//! CloudEvents Kafka binding and Confluent's framing, then checked against a product's contract
//! (attributes, Avro payload, rules). Every record must get a verdict, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use meshline_core::{
    binding::kafka::Record,
    codec::wire,
    contract::{Contract, WriterSchema},
};

const PLAY: &str = include_str!("../../schemas/player/play-event.avsc");

fn contract() -> &'static (Contract, Arc<WriterSchema>) {
    static CONTRACT: OnceLock<(Contract, Arc<WriterSchema>)> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let schema = Arc::new(apache_avro::Schema::parse_str(PLAY).expect("the demo schema"));
        let metadata = serde_json::json!({"properties": {
            "cloudevents.source": "/player",
            "cloudevents.types": "com.example.player.track.played"}});
        let rules = serde_json::json!({"domainRules": [
            {"name": "positive", "kind": "CONDITION", "type": "CEL", "mode": "WRITE",
             "expr": "message.duration_ms >= 0", "onFailure": "DLQ"}]});
        let contract = Contract::from_registered(
            "player.play-events",
            schema.clone(),
            Some(&metadata),
            Some(&rules),
        )
        .expect("the demo contract");
        (contract, Arc::new(WriterSchema::new(schema)))
    })
}

/// `data` as a record: parts separated by 0xFF; the first is the key, the last the payload, the
/// ones between header names and values in turn.
fn record(data: &[u8]) -> Record {
    let mut parts: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    let key = (!parts.is_empty()).then(|| parts.remove(0).to_vec());
    let payload = parts.pop().map(<[u8]>::to_vec);
    let headers = parts
        .chunks(2)
        .map(|pair| {
            (
                String::from_utf8_lossy(pair[0]).into_owned(),
                pair.get(1).map_or_else(Vec::new, |v| v.to_vec()),
            )
        })
        .collect();
    Record {
        key,
        headers,
        payload,
    }
}

fuzz_target!(|data: &[u8]| {
    let record = record(data);
    let _ = record.to_event();
    if let Some(payload) = &record.payload {
        let _ = wire::decode(payload);
    }
    let (contract, schema) = contract();
    let _ = contract.check_record(&record, |_| Some(schema.clone()));
});
