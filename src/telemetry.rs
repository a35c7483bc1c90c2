//! Logs, structured and filtered with `RUST_LOG`; spans exported over OTLP; and the request
//! metrics of the HTTP servers.
//!
//! Traces: with `--otlp-endpoint URL`, or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` /
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (and `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`), the `tracing` spans are exported over
//! OTLP/HTTP (protobuf) in batches from a thread of their own. Spans that handle an event are
//! children of the event's W3C trace context (`traceparent`): a trace follows an event from the
//! producer's send through the HTTP ingress and the gateway's check.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
};

use opentelemetry::{propagation::TextMapPropagator as _, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{
    fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _, EnvFilter, Layer as _,
};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether spans are exported (per-event spans are made only then).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported over OTLP.
pub(crate) fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Flushes the exported spans when dropped (at the end of `main`).
#[derive(Debug)]
pub(crate) struct Tracing(Option<SdkTracerProvider>);

impl Drop for Tracing {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("warning: spans not all exported: {error}");
            }
        }
    }
}

/// Installs the global subscriber: logs in `format` (`RUST_LOG` overrides the default filter,
/// which keeps the embedded broker's own logs at `warn`), and spans exported to `otlp` (an
/// OTLP/HTTP base URL) or where the `OTEL_*` variables say, if either names an endpoint.
pub(crate) fn init(format: LogFormat, otlp: Option<&str>) -> Tracing {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,tansu_service=warn,libsql=warn,rdkafka=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn"));
    let logs = match format {
        LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let provider = match tracer_provider(otlp) {
        Ok(provider) => provider,
        Err(error) => {
            eprintln!("warning: spans are not exported: {error}");
            None
        }
    };
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("meshline"))
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init();
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Tracing(provider)
}

/// The tracer provider exporting to `otlp` or the `OTEL_*` endpoint, if one is named.
fn tracer_provider(otlp: Option<&str>) -> Result<Option<SdkTracerProvider>, String> {
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|e| !e.is_empty()));
    if otlp.is_none() && !from_env {
        return Ok(None);
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(base) = otlp {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = exporter.build().map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("meshline");
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// Makes `span` a child of the W3C trace context `traceparent` (an event's), when spans are
/// exported and it is valid.
pub(crate) fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// The W3C trace context of `span`, if it is exported: what an event it produced carries, so
/// the next hop is its child.
pub(crate) use crate::sdk::trace::traceparent_of;

/// `collector`, registered in `registry`: each metric is made and registered in one step.
pub(crate) fn registered<C>(
    registry: &prometheus::Registry,
    collector: C,
) -> Result<C, prometheus::Error>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

/// Request metrics of one HTTP server, exposed on its `/metrics`.
#[derive(Clone)]
pub(crate) struct HttpMetrics {
    registry: prometheus::Registry,
    requests: prometheus::IntCounterVec,
    seconds: prometheus::HistogramVec,
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
}

impl HttpMetrics {
    /// Metrics of the server `server` (a label value: `registry`, `gateway`).
    pub(crate) fn new(server: &str) -> Result<Self, prometheus::Error> {
        let labels = prometheus::labels! {"server".to_owned() => server.to_owned()};
        let registry = prometheus::Registry::new();
        let requests = registered(
            &registry,
            prometheus::IntCounterVec::new(
                prometheus::Opts::new(
                    "meshline_http_requests_total",
                    "HTTP requests answered, by route and status.",
                )
                .const_labels(labels.clone()),
                &["route", "method", "status"],
            )?,
        )?;
        let seconds = registered(
            &registry,
            prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(
                    "meshline_http_request_duration_seconds",
                    "Time to answer an HTTP request, by route.",
                )
                .const_labels(labels)
                .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
                &["route", "method"],
            )?,
        )?;
        Ok(Self {
            registry,
            requests,
            seconds,
        })
    }

    /// The registry to add a component's own metrics to.
    pub(crate) fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Adds `/metrics` and request counting to `router`.
    pub(crate) fn instrument(&self, router: axum::Router) -> axum::Router {
        let metrics = self.clone();
        let scrape = self.clone();
        router
            .route(
                "/metrics",
                axum::routing::get(move || std::future::ready(scrape.render())),
            )
            .layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    let metrics = metrics.clone();
                    async move { metrics.observe(request, next).await }
                },
            ))
    }

    async fn observe(
        &self,
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("unmatched", |p| p.as_str())
            .to_owned();
        // a label takes known values only: a client's made-up method is `other`
        let method = method_label(request.method());
        let started = std::time::Instant::now();
        let response = next.run(request).await;
        self.seconds
            .with_label_values(&[route.as_str(), method])
            .observe(started.elapsed().as_secs_f64());
        self.requests
            .with_label_values(&[route.as_str(), method, response.status().as_str()])
            .inc();
        response
    }

    fn render(&self) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        let encoder = prometheus::TextEncoder::new();
        match encoder.encode_to_string(&self.registry.gather()) {
            Ok(text) => (
                [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                text,
            )
                .into_response(),
            Err(e) => (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode metrics: {e}"),
            )
                .into_response(),
        }
    }
}

/// The `method` label of a request: a standard HTTP method, else `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The `domain` and `product` label values of a product id (`<domain>.<product>`): every
/// component labels its product metrics so.
pub fn product_labels(product: &str) -> [&str; 2] {
    [crate::product::ProductId(product).domain(), product]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_made_up_method_is_one_label_value() {
        use axum::http::Method;
        assert_eq!(super::method_label(&Method::GET), "GET");
        for made_up in ["FOO", "X-1234567", "BREW"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(super::method_label(&method), "other");
        }
    }
}
