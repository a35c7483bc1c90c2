//! Protocol bindings of CloudEvents: how an event travels on each transport meshline speaks.

pub mod kafka;

/// The CloudEvents distributed-tracing extension attribute: a W3C trace context
/// (`00-<trace id>-<parent id>-<flags>`), on Kafka the `ce_traceparent` header.
pub const TRACEPARENT: &str = "traceparent";

/// A new W3C trace context: random trace and parent ids, sampled.
pub fn new_traceparent() -> String {
    TraceParent::new().as_str().to_owned()
}

/// A new W3C trace context written on the stack (`00-<trace id>-<parent id>-01`), for senders
/// that copy it into a header anyway.
#[derive(Debug, Clone, Copy)]
pub struct TraceParent([u8; 55]);

impl TraceParent {
    /// Random trace and parent ids, sampled.
    pub fn new() -> Self {
        use rand::RngExt as _;
        let mut rng = rand::rng();
        // all-zero ids are invalid; a random u128/u64 is zero with negligible odds, but never
        // send one
        let trace: u128 = rng.random::<u128>().max(1);
        let parent: u64 = rng.random::<u64>().max(1);
        let mut out = *b"00-00000000000000000000000000000001-0000000000000001-01";
        // each slice is exactly twice its id's bytes long, so hex encoding cannot fail
        let _ = hex::encode_to_slice(trace.to_be_bytes(), &mut out[3..35]);
        let _ = hex::encode_to_slice(parent.to_be_bytes(), &mut out[36..52]);
        Self(out)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // ASCII by construction
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl Default for TraceParent {
    fn default() -> Self {
        Self::new()
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
