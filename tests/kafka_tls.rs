//! meshline on a Kafka cluster reached over SASL_SSL, as on a managed cluster: a TLS endpoint
//! with a certificate this test makes stands in front of the embedded broker (which advertises
//! it and authenticates every client with SCRAM-SHA-256), and every component is given only that
//! endpoint, the CA and its SCRAM credentials through `MESHLINE_KAFKA_*`. The
//! registry, gateway and snapshotter of `meshline up --bootstrap`, the SDK, and `meshline tail`
//! all work through it, every producer writing zstd-compressed batches. One test in its own binary: it sets the
//! process's environment.

mod common;

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use common::*;
use meshline::{
    broker::embedded::{EmbeddedBroker, Storage},
    demo::events::PlayEvent,
    sdk::Producer,
};
use rand::{rngs::StdRng, SeedableRng};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Message,
};

/// A CA, and a server certificate for 127.0.0.1 signed by it: (CA PEM, server cert PEM, key PEM).
fn certificates() -> (String, String, String) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "meshline test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A TLS endpoint on `at` forwarding each connection to `upstream` in plain text; counts the TLS
/// sessions it served.
async fn tls_front(
    at: SocketAddr,
    cert: &str,
    key: &str,
    upstream: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>) {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sessions = Arc::new(AtomicUsize::new(0));
    let counted = sessions.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_component_works_over_sasl_ssl_scram_with_zstd() {
    meshline::registry::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca).unwrap();

    // the broker's own port is never told to a client: only the TLS endpoint is advertised
    let plain: SocketAddr = free_port().parse().unwrap();
    let front_port: SocketAddr = free_port().parse().unwrap();
    let broker = EmbeddedBroker::start_with_scram(
        plain,
        Some(front_port),
        &Storage::in_dir(&dir.path().join("broker")),
        &[("meshline", "meshline-secret")],
    )
    .await
    .unwrap();
    let (front, sessions) = tls_front(front_port, &cert, &key, broker.addr()).await;
    assert_eq!(front, front_port);
    let bootstrap = front.to_string();

    // every client of this process and of the processes it starts
    std::env::set_var("MESHLINE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl");
    std::env::set_var("MESHLINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256");
    std::env::set_var("MESHLINE_KAFKA_SASL_USERNAME", "meshline");
    std::env::set_var("MESHLINE_KAFKA_SASL_PASSWORD", "meshline-secret");
    std::env::set_var("MESHLINE_KAFKA_SSL_CA_LOCATION", &ca_path);
    std::env::set_var("MESHLINE_KAFKA_COMPRESSION_TYPE", "zstd");

    // a client trusting another CA is refused: the certificate is really checked
    let (other_ca, _, _) = certificates();
    let other_path = dir.path().join("other-ca.pem");
    std::fs::write(&other_path, other_ca).unwrap();
    let untrusting: BaseConsumer = meshline::broker::client_config(&bootstrap)
        .set("ssl.ca.location", other_path.to_string_lossy())
        .create()
        .unwrap();
    let refused = tokio::task::spawn_blocking(move || {
        untrusting
            .fetch_metadata(None, Duration::from_secs(3))
            .is_err()
    })
    .await
    .unwrap();
    assert!(
        refused,
        "a client that does not trust the CA gets no metadata"
    );
    // a client with the wrong password is refused too: SCRAM is really checked
    for (mechanism, password) in [("SCRAM-SHA-256", "wrong"), ("PLAIN", "meshline-secret")] {
        let stranger: BaseConsumer = meshline::broker::client_config(&bootstrap)
            .set("sasl.mechanism", mechanism)
            .set("sasl.password", password)
            .create()
            .unwrap();
        let refused = tokio::task::spawn_blocking(move || {
            stranger
                .fetch_metadata(None, Duration::from_secs(3))
                .is_err()
        })
        .await
        .unwrap();
        assert!(
            refused,
            "{mechanism} with password {password} gets no metadata"
        );
    }

    let registry = free_port();
    let http = free_port();
    let mut up = meshline()
        .args(["up", "--bootstrap", &bootstrap])
        .args(["--registry-listen", &registry, "--http-listen", &http])
        .arg("--config")
        .arg(repo_config())
        .arg("--data-dir")
        .arg(dir.path().join("up"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    wait_for(&lines, "Stop with Ctrl-C", 120);
    std::thread::spawn(move || for _ in lines {});

    // the SDK, over TLS, with zstd batches
    let registry_url = format!("http://{registry}");
    let sdk = Producer::builder(&bootstrap, &registry_url)
        .source("/player/tls")
        .event::<PlayEvent>()
        .build()
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    for _ in 0..50 {
        let event = PlayEvent::random(&mut rng, chrono::Utc::now());
        sdk.send(&event).await.unwrap();
    }

    // the gateway forwards them over TLS; `meshline tail` reads them over TLS
    let tail = meshline()
        .args(["tail", "player.play-events", "--from-beginning"])
        .args(["--bootstrap", &bootstrap, "--registry", &registry_url])
        .args(["--max-events", "50"])
        .arg("--config")
        .arg(repo_config())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail.status.success(),
        "tail: {}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let shown = out
        .lines()
        .filter(|l| l.contains("\"source\":\"/player/tls\""))
        .count();
    assert_eq!(shown, 50, "{out}");

    // a plain consumer reads the gateway's zstd batches (this librdkafka refuses
    // `compression.type=zstd` when built without zstd)
    let consumer: BaseConsumer = meshline::broker::client_config(&bootstrap)
        .set("group.id", "tls-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["player.play-events"]).unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut n = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while n < 50 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                assert!(m.payload().is_some());
                n += 1;
            }
        }
        n
    })
    .await
    .unwrap();
    assert_eq!(read, 50);
    assert!(
        sessions.load(Ordering::Relaxed) >= 5,
        "every component connected through TLS"
    );

    interrupt(&up);
    assert!(wait_exit(&mut up, 60).success());
    broker.stop().await;
}
