//! HTTP servers (registry, gateway): binding with errors that say what to do, serving over
//! plain HTTP or TLS (rustls) until the stop token fires.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::response::IntoResponse as _;
use rustls::pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};
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
    /// The TLS certificate or key cannot be used.
    #[error("cannot use {path} for TLS: {message}; pass a PEM certificate chain with --tls-cert and its PEM private key with --tls-key")]
    Tls {
        /// The file.
        path: String,
        /// Why.
        message: String,
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

/// What one HTTP server gives a client at most: a client that trickles its headers or its body,
/// or keeps connections open, holds no more than these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest time to receive a request's headers, the first request's and each next one's on a
    /// kept-alive connection (so also how long an idle connection stays open).
    pub header_read: Duration,
    /// Longest time from a request's headers to its response, reading the body included.
    pub request: Duration,
    /// Most connections served at once; past that a new connection is answered 503 and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s for headers, 60 s for a request, 1,024 connections.
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `stop`, then finishes the requests in flight.
pub fn spawn(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
) -> JoinHandle<()> {
    spawn_with(listener, None, router, stop)
}

/// Like [`spawn`], over TLS when `tls` is given.
pub fn spawn_with(
    listener: TcpListener,
    tls: Option<&Tls>,
    router: axum::Router,
    stop: CancellationToken,
) -> JoinHandle<()> {
    spawn_limited(listener, tls, router, stop, Limits::default())
}

/// Like [`spawn_with`], within `limits`.
pub fn spawn_limited(
    listener: TcpListener,
    tls: Option<&Tls>,
    router: axum::Router,
    stop: CancellationToken,
    limits: Limits,
) -> JoinHandle<()> {
    match tls {
        None => tokio::spawn(serve(listener, router, stop, limits)),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls.acceptor.clone(), stop.clone());
            tokio::spawn(serve(listener, router, stop, limits))
        }
    }
}

/// Accepts connections until `stop`, each served on a task of its own within `limits`; then
/// lets every connection finish the request it is serving (at most `limits.request`).
async fn serve<L>(mut listener: L, router: axum::Router, stop: CancellationToken, limits: Limits)
where
    L: axum::serve::Listener,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (io, _) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // reap the connections that ended
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            connections.spawn(refuse(io, limits.max_connections));
            continue;
        };
        let (router, stop) = (router.clone(), stop.clone());
        connections.spawn(async move {
            connection(io, router, stop, limits).await;
            drop(slot);
        });
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.request + Duration::from_secs(1), drained)
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open at shutdown were closed");
    }
}

/// Serves one connection: HTTP/1.1 with keep-alive, each request bounded by `limits`.
async fn connection<Io>(io: Io, router: axum::Router, stop: CancellationToken, limits: Limits)
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let service = hyper::service::service_fn(
        move |request: hyper::Request<hyper::body::Incoming>| {
            let router = router.clone();
            async move {
                let response = tokio::time::timeout(
                    limits.request,
                    router.oneshot(request.map(axum::body::Body::new)),
                )
                .await;
                Ok::<_, std::convert::Infallible>(match response {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        let why = format!(
                        "the request was not received and answered within {} s; send the body at once",
                        limits.request.as_secs()
                    );
                        // the rest of the body is not waited for: the connection closes
                        let close = [(axum::http::header::CONNECTION, "close")];
                        (axum::http::StatusCode::REQUEST_TIMEOUT, close, why).into_response()
                    }
                })
            }
        },
    );
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    let served = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        _ = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse<Io>(mut io: Io, max: usize)
where
    Io: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt as _;
    let body = format!("the server has {max} connections open, its limit; retry later\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), io.write_all(response.as_bytes())).await;
    let _ = io.shutdown().await;
}

/// The TLS identity of the HTTP servers: a certificate chain and its private key.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let error = |path: &Path, message: String| Error::Tls {
            path: path.display().to_string(),
            message,
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
            .map_err(|e| error(cert, e.to_string()))?;
        if certs.is_empty() {
            return Err(error(cert, "no certificate in it".into()));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| error(key, e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| error(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| error(key, format!("it does not match the certificate: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Accepted TLS connections: handshakes run on tasks of their own (bounded to 10 s each), so a
/// slow client holds up no other.
struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor, stop: CancellationToken) -> Self {
        let local = listener.local_addr();
        let (tx, handshaken) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, addr) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(Duration::from_secs(10), handshake).await {
                        Ok(Ok(tls)) => {
                            let _closed = tx.send((tls, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { handshaken, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // stopped: no more connections; graceful shutdown ends the server
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::Schema;

    use crate::registry::client::{install_crypto_provider, Client, Settings};

    /// A CA, and a certificate for 127.0.0.1 it signs: (CA PEM, certificate PEM, key PEM).
    fn certificates() -> (String, String, String) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca.clone().self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (ca_pem, cert.pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn reaches_a_registry_over_https_with_its_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = certificates();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        install_crypto_provider();
        let tls = super::Tls::load(&cert_path, &key_path).unwrap();
        let router = axum::Router::new().route(
            "/schemas/ids/{id}",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok())
                    == Some("Bearer mlt_secret")
                {
                    (axum::http::StatusCode::OK, r#"{"schema":"\"string\""}"#)
                } else {
                    (
                        axum::http::StatusCode::UNAUTHORIZED,
                        r#"{"error_code":40101,"message":"Unauthorized"}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        super::spawn_with(listener, Some(&tls), router, stop.clone());

        let trusted = Settings::default().trusting(ca.as_bytes()).unwrap();
        let client = Client::with_settings(&url, &trusted.clone().bearer("mlt_secret"));
        assert_eq!(*client.schema(1).await.unwrap(), Schema::String);
        // the registry's answer, not a TLS failure: the connection was made
        let refused = Client::with_settings(&url, &trusted)
            .schema(1)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(40101), "{refused}");
        // a CA the client does not trust: no connection
        let untrusted = Client::with_settings(&url, &Settings::default().bearer("mlt_secret"));
        assert_eq!(untrusted.schema(1).await.unwrap_err().code(), None);
        stop.cancel();
    }
}
