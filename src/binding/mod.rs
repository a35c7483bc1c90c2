//! Protocol bindings of CloudEvents: how an event travels on each transport meshline speaks.

pub mod kafka;

/// The CloudEvents distributed-tracing extension attribute: a W3C trace context
/// (`00-<trace id>-<parent id>-<flags>`), on Kafka the `ce_traceparent` header.
pub const TRACEPARENT: &str = "traceparent";

/// A new W3C trace context: random trace and parent ids, sampled.
pub fn new_traceparent() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    // all-zero ids are invalid; a random u128/u64 is zero with negligible odds, but never send one
    let trace: u128 = rng.random::<u128>().max(1);
    let parent: u64 = rng.random::<u64>().max(1);
    // hex into one buffer: `format!` cost a tenth of the SDK's CloudEvents time
    let mut out = *b"00-................................-................-01";
    let written = hex::encode_to_slice(trace.to_be_bytes(), &mut out[3..35])
        .and_then(|()| hex::encode_to_slice(parent.to_be_bytes(), &mut out[36..52]));
    match (written, std::str::from_utf8(&out)) {
        (Ok(()), Ok(text)) => text.to_owned(),
        _ => format!("00-{trace:032x}-{parent:016x}-01"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_traceparent_is_a_valid_w3c_trace_context() {
        let a = super::new_traceparent();
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4, "{a}");
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert_eq!((parts[1].len(), parts[2].len()), (32, 16));
        assert!(a[3..].chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(a, super::new_traceparent(), "a new trace each time");
    }
}
