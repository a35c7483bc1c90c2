//! Logs, structured and filtered with `RUST_LOG`, and the request metrics of the HTTP servers.

use tracing_subscriber::{fmt, EnvFilter};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default filter, which keeps the
/// embedded broker's own logs at `warn`.
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,tansu_service=warn,libsql=warn,rdkafka=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

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
        let method = request.method().as_str().to_owned();
        let started = std::time::Instant::now();
        let response = next.run(request).await;
        self.seconds
            .with_label_values(&[route.as_str(), method.as_str()])
            .observe(started.elapsed().as_secs_f64());
        self.requests
            .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
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

/// The `domain` and `product` label values of a product id (`<domain>.<product>`): every
/// component labels its product metrics so.
pub fn product_labels(product: &str) -> [&str; 2] {
    [crate::product::ProductId(product).domain(), product]
}
