//! Avro and JSON Schema texts as the registry takes them: parsed, checked against the limits,
//! normalized, and checked for compatibility with themselves. Nothing may panic or overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshline_core::{limits, registry};

fuzz_target!(|data: &[u8]| {
    let Some((&format, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if format % 2 == 0 {
        if let Ok(schema) = apache_avro::Schema::parse_str(text) {
            if limits::check_avro(&schema).is_ok() {
                let _ = registry::normalize::normalized(&schema, Vec::new());
                let _ = registry::compat::cannot_read(&schema, &schema);
            }
        }
    } else if let Ok(schema) = registry::json_schema::parse(text) {
        let _ = registry::json_schema::canonical(&schema);
        let _ = registry::json_schema::cannot_read(&schema, &schema);
        let _ = meshline_core::codec::json_schema::avro_fields(&schema, "event");
    }
});
