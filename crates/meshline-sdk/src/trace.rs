//! The trace context an event carries when its type gives none. With the `otel` feature, an
//! event sent while a `tracing` span of an OpenTelemetry trace is current (the application's
//! `tracing-opentelemetry` layer) is the child of a `sdk_send` span of that trace, so the
//! gateway's check of it, and every hop after, joins the application's trace. Otherwise (and
//! without the feature) the binding gives the event a new trace.

/// The `traceparent` of a `sdk_send` span of `product`, child of the current span, when that
/// span belongs to an OpenTelemetry trace.
#[cfg(feature = "otel")]
pub(crate) fn send_context(product: &str) -> Option<String> {
    let current = tracing::Span::current();
    if current.is_none() {
        return None;
    }
    traceparent_of(&current)?;
    traceparent_of(&tracing::info_span!("sdk_send", product))
}

/// The W3C trace context (`traceparent`) of `span`, when it belongs to an OpenTelemetry trace.
#[cfg(feature = "otel")]
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Without the `otel` feature: none (the binding starts a new trace).
#[cfg(not(feature = "otel"))]
pub(crate) fn send_context(_product: &str) -> Option<String> {
    None
}
