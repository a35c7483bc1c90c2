//! Registry request bodies: a schema registration (with its metadata and its rules, which are
//! compiled and costed against a product's schema) and a config change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshline_core::{
    contract::Contract,
    registry::api::{ConfigRequest, SchemaRequest},
};

const PLAY: &str = include_str!("../../schemas/player/play-event.avsc");

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ConfigRequest>(data);
    let Ok(request) = serde_json::from_slice::<SchemaRequest>(data) else {
        return;
    };
    let Ok(schema) = apache_avro::Schema::parse_str(PLAY) else {
        return;
    };
    if let Some(rule_set) = &request.rule_set {
        let _ = Contract::check_rule_set(&schema, rule_set);
    }
    if let Some(metadata) = &request.metadata {
        let _ = Contract::from_registered(
            "player.play-events",
            std::sync::Arc::new(schema),
            Some(metadata),
            request.rule_set.as_ref(),
        );
    }
});
