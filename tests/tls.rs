//! The gateway's HTTP server over TLS (rustls): a client trusting the certificate gets answers,
//! plain HTTP and untrusting clients get none, and unusable key files are named.

use std::{path::PathBuf, sync::Arc, time::Duration};

use meshline::server;
use rustls::pki_types::{pem::PemObject as _, CertificateDer, ServerName};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn client(trusted: bool) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    if trusted {
        for cert in CertificateDer::pem_file_iter(fixture("tls-cert.pem")).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn the_http_server_speaks_tls_with_the_given_certificate() {
    let tls = server::Tls::load(&fixture("tls-cert.pem"), &fixture("tls-key.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
    let stop = CancellationToken::new();
    let served = server::spawn_with(listener, Some(&tls), router, stop.clone());
    let name = ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = client(true).connect(name.clone(), tcp).await.unwrap();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("hello"), "{response}");

    // plain HTTP on the TLS port: no HTTP answer
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("hello"));

    // a client that does not trust the certificate refuses the handshake
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(client(false).connect(name, tcp).await.is_err());

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server stops")
        .unwrap();
}

#[test]
fn a_missing_or_mismatched_key_is_named() {
    let cert = fixture("tls-cert.pem");
    let missing = server::Tls::load(&cert, std::path::Path::new("/nonexistent/key.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/nonexistent/key.pem") && missing.contains("--tls-key"),
        "{missing}"
    );
    let swapped = server::Tls::load(&fixture("tls-key.pem"), &cert)
        .unwrap_err()
        .to_string();
    assert!(swapped.contains("tls-"), "{swapped}");
}

/// `meshline registry --tls-cert --tls-key` serves the Confluent API over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_registry_serves_https() {
    let broker = meshline::broker::embedded::EmbeddedBroker::start(
        "127.0.0.1:0".parse().unwrap(),
        &meshline::broker::embedded::Storage::Memory,
    )
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
        .args(["registry", "--bootstrap", &broker.bootstrap()])
        .args(["--registry-listen", &listen])
        .args(["--tls-cert", fixture("tls-cert.pem").to_str().unwrap()])
        .args(["--tls-key", fixture("tls-key.pem").to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut response = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline && !response.starts_with("HTTP/1.1 200") {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(tcp) = TcpStream::connect(&listen).await else {
            continue;
        };
        let Ok(mut stream) = client(true).connect(name.clone(), tcp).await else {
            continue;
        };
        stream
            .write_all(b"GET /subjects HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        response = String::from_utf8_lossy(&bytes).into_owned();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("[]"), "no subjects yet: {response}");
    broker.stop().await;
}

/// `meshline up --tls-cert --tls-key` serves every HTTP server over HTTPS: the registry too (its
/// Confluent API, which meshline's own components reach trusting `MESHLINE_REGISTRY_CA_FILE`),
/// so no token crosses the network in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_tls_serves_the_registry_and_the_gateway_over_https() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string()
    };
    let (kafka, registry, http) = (free(), free(), free());
    let data = tempfile::tempdir().unwrap();
    let cert = fixture("tls-cert.pem");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
        .args(["up", "--listen", &kafka, "--registry-listen", &registry])
        .args(["--http-listen", &http, "--no-snapshots"])
        .arg("--config")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["--tls-cert", cert.to_str().unwrap()])
        .args(["--tls-key", fixture("tls-key.pem").to_str().unwrap()])
        .env("MESHLINE_REGISTRY_CA_FILE", &cert)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let banner = std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.contains("Stop with Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    let banner = tokio::task::spawn_blocking(move || banner.join().unwrap())
        .await
        .unwrap();
    let up = banner.iter().any(|l| l.contains("Stop with Ctrl-C"));
    let get = |addr: String, path: &'static str| async move {
        let name = ServerName::try_from("localhost").unwrap();
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let mut stream = client(true).connect(name, tcp).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let subjects = if up {
        get(registry.clone(), "/subjects").await
    } else {
        String::new()
    };
    let products = if up {
        get(http.clone(), "/products").await
    } else {
        String::new()
    };
    // plain HTTP on the registry's port gets no answer
    let mut plain = TcpStream::connect(&registry).await.unwrap();
    plain
        .write_all(b"GET /subjects HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(up, "meshline up did not start: {banner:#?}");
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("https://{registry}"))),
        "{banner:#?}"
    );
    assert!(subjects.starts_with("HTTP/1.1 200"), "{subjects}");
    assert!(subjects.contains("player.play-events-value"), "{subjects}");
    assert!(products.starts_with("HTTP/1.1 200"), "{products}");
    assert!(!String::from_utf8_lossy(&answer).contains("player.play-events"));
}
