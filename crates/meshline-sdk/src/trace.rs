//! The trace context an event carries when its type gives none. With the `otel` feature, an
//! event sent while a `tracing` span of an OpenTelemetry trace is current (the application's
//! `tracing-opentelemetry` layer) is the child of a `sdk_send` span of that trace, so the
//! gateway's check of it, and every hop after, joins the application's trace. Otherwise (and
//! without the feature) the binding gives the event a new trace.

/// The `traceparent` of a `sdk_send` span of `product`, child of the current span, when that
/// span belongs to an OpenTelemetry trace.
#[cfg(feature = "otel")]
pub(crate) fn send_context(product: &str) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let traced = |span: &tracing::Span| {
        let context = span.context();
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    };
    let current = tracing::Span::current();
    if current.is_none() {
        return None;
    }
    traced(&current)?;
    let send = tracing::info_span!("sdk_send", product);
    let context = traced(&send)?;
    Some(format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    ))
}

/// Without the `otel` feature: none (the binding starts a new trace).
#[cfg(not(feature = "otel"))]
pub(crate) fn send_context(_product: &str) -> Option<String> {
    None
}
