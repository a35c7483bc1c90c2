//! HTTP servers (registry, gateway): binding with errors that say what to do, and serving
//! until the stop token fires.

use std::net::SocketAddr;

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address is taken.
    #[error("cannot serve {what} on {addr}: the address is in use; stop the process that holds it (`ss -ltnp | grep {}`) or pick another address with `{flag}`", addr.port())]
    PortInUse {
        /// What would have been served.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The flag that sets it.
        flag: &'static str,
    },
    /// The address cannot be bound for another reason.
    #[error("cannot serve {what} on {addr}: {source}")]
    Bind {
        /// What would have been served.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Binds `addr` for `what` (e.g. "the schema registry"); `flag` is the option that moves it.
pub async fn bind(addr: SocketAddr, what: &'static str, flag: &'static str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse { what, addr, flag }
        } else {
            Error::Bind { what, addr, source }
        }
    })
}

/// Serves `router` on `listener` until `stop`, then finishes the requests in flight.
pub fn spawn(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    })
}
