//! The gateway: every event entering a data product passes its contract, or lands in the
//! product's dead-letter topic with the reason.
//!
//! ```text
//! producers ──► <id>.ingress ──► stream (contract check) ──┬──► <id>       (valid)
//! HTTP POST /v1/products/{id}/events ──► <id>.ingress      └──► <id>.dlq   (reason headers)
//! ```
//!
//! - `contracts`: the registered contracts, refreshed on unknown schema ids;
//! - `stream`: the consume → check → produce loop and its delivery guarantee;
//! - [`http`]: the HTTP ingress (tokens per domain, [`crate::auth`]);
//! - `replay`: re-submitting dead letters after a fix;
//! - [`metrics`]: Prometheus metrics;
//! - [`service`]: all of it assembled from its settings ([`start`]).
//!
//! What an output record carries and where a partition resumes from the outputs' tails are
//! shared with the snapshotter: [`crate::outputs`].

mod contracts;
pub mod http;
pub mod lineage;
pub mod metrics;
pub(crate) mod replay;
pub mod service;
mod stream;

use std::{sync::Arc, time::Duration};

use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

pub use contracts::Contracts;
pub use metrics::Metrics;
pub use service::{start, Config, Started};
pub use stream::{DeliveryMode, StreamConfig};

use crate::{backoff::Backoff, registry::client};

/// Errors of the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry did not answer a product's contract.
    #[error("fetching the registered contract of {product}: {source}; is the registry up and the product registered (`meshline up` registers every descriptor)?")]
    Registry {
        /// The product.
        product: String,
        /// The client error.
        source: Box<client::Error>,
    },
    /// The registered contract cannot be checked.
    #[error(transparent)]
    Contract(#[from] crate::contract::Error),
    /// A Kafka call failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What the gateway was doing.
        context: String,
        /// The client error.
        source: KafkaError,
    },
    /// The metrics cannot be registered.
    #[error("registering the gateway's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Something that should not happen; the gateway restarts.
    #[error("{0}")]
    Unexpected(String),
}

impl From<crate::outputs::Error> for Error {
    fn from(e: crate::outputs::Error) -> Self {
        match e {
            crate::outputs::Error::Kafka { context, source } => Self::Kafka { context, source },
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the stream gateway on a thread of its own until `stop`, restarting it after an error
/// (with a backoff of 1 s doubling to 30 s). Each restart resumes exactly where the outputs end.
pub async fn run_stream(
    config: StreamConfig,
    contracts: Arc<Contracts>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    // new versions of the contracts take effect while the stream runs
    for product in contracts.products() {
        metrics.contract_version(product, contracts.version(product));
    }
    let report = metrics.clone();
    tokio::spawn(
        contracts
            .clone()
            .watch(stop.clone(), move |contracts, product| {
                report.contract_version(product, contracts.version(product));
            }),
    );
    let mut backoff = Backoff::new();
    loop {
        let (config, contracts, metrics, handle, token) = (
            config.clone(),
            contracts.clone(),
            metrics.clone(),
            tokio::runtime::Handle::current(),
            stop.clone(),
        );
        let started = std::time::Instant::now();
        // a thread of its own, named so `top -H` and profiles show it
        let (done, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("gateway".into())
            .spawn(move || {
                let _ = done.send(stream::run(config, contracts, metrics, handle, token));
            });
        match spawned {
            Err(e) => tracing::error!(error = %e, "cannot start the gateway thread; retrying"),
            Ok(_) => match result.await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => tracing::error!(error = %e, "gateway stopped; restarting"),
                Err(_) => tracing::error!("gateway thread panicked; restarting"),
            },
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}
