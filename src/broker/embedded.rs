//! The embedded Kafka-API broker: tansu, run as a library inside the meshline process, so
//! `meshline up` and the tests need nothing else installed.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Component, Path, PathBuf},
    time::Duration,
};

use tansu_broker::{broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::{Storage as _, StorageContainer};
use tokio::{task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use url::Url;

const CLUSTER_ID: &str = "meshline";

use super::{Error, Result};

/// Where the embedded broker keeps its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory: fast, gone at exit. Its high watermarks are wrong (tansu 0.6.0), so anything
    /// reading a partition's tail or lag must use [`Storage::Sqlite`].
    Memory,
    /// A SQLite file: durable across restarts and `kill -9`.
    Sqlite(PathBuf),
}

impl Storage {
    /// Durable storage in `data_dir` (`<data_dir>/broker.db`).
    pub fn in_dir(data_dir: &Path) -> Self {
        Self::Sqlite(data_dir.join("broker.db"))
    }

    /// The tansu storage URL. tansu opens SQLite paths relative to the working directory, so an
    /// absolute path is written relative to it.
    fn url(&self) -> Result<Url> {
        let text = match self {
            Self::Memory => "memory://meshline/".to_owned(),
            Self::Sqlite(path) => {
                let cwd = std::env::current_dir().map_err(|source| Error::Storage {
                    message: format!("cannot read the working directory: {source}"),
                })?;
                let absolute = if path.is_absolute() {
                    path.clone()
                } else {
                    cwd.join(path)
                };
                if let Some(parent) = absolute.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| Error::Storage {
                        message: format!(
                            "cannot create data directory {}: {source}",
                            parent.display()
                        ),
                    })?;
                }
                let up = cwd
                    .components()
                    .filter(|c| matches!(c, Component::Normal(_)))
                    .count();
                let mut relative = "../".repeat(up);
                relative.push_str(
                    absolute
                        .to_str()
                        .ok_or_else(|| Error::Storage {
                            message: format!("data path {} is not UTF-8", absolute.display()),
                        })?
                        .trim_start_matches('/'),
                );
                format!("sqlite:{relative}")
            }
        };
        Url::parse(&text).map_err(|e| Error::Storage {
            message: format!("bad storage URL {text}: {e}"),
        })
    }
}

/// A running embedded broker. Dropping it stops the broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    task: Option<JoinHandle<Result<(), tansu_broker::Error>>>,
    cancellation: CancellationToken,
}

impl EmbeddedBroker {
    /// Starts a broker listening on `listen` (port 0 picks a free port) with `storage`, and
    /// waits until it accepts connections.
    pub async fn start(listen: SocketAddr, storage: &Storage) -> Result<Self> {
        Self::start_advertising(listen, None, storage).await
    }

    /// [`EmbeddedBroker::start`], telling clients to connect to `advertised` rather than to the
    /// listen address: a TLS terminator or a proxy in front of the broker.
    pub async fn start_advertising(
        listen: SocketAddr,
        advertised: Option<SocketAddr>,
        storage: &Storage,
    ) -> Result<Self> {
        let addr = reserve(listen)?;
        let url_of = |addr: SocketAddr| {
            Url::parse(&format!("tcp://{addr}")).map_err(|e| Error::Storage {
                message: format!("bad listener address {addr}: {e}"),
            })
        };
        let url = url_of(addr)?;
        let advertised = url_of(advertised.unwrap_or(addr))?;
        let cancellation = CancellationToken::new();
        let container = open_storage(&advertised, &storage.url()?, &cancellation).await?;
        let groups = Controller::with_storage(container.clone())
            .map_err(|e| Error::Embedded(Box::new(e)))?;
        let mut broker = Broker::new(
            tansu_broker::NODE_ID,
            CLUSTER_ID,
            url,
            advertised,
            container,
            groups,
            uuid::Uuid::new_v4(),
        );
        let task = tokio::spawn(async move { broker.serve(Instant::now()).await });
        Self::ready(addr, task, cancellation).await
    }

    /// [`EmbeddedBroker::start_advertising`] on durable storage, authenticating every client
    /// with SASL/SCRAM-SHA-256 as one of `users` (name, password): a cluster that refuses
    /// anonymous clients, as a platform team's does.
    pub async fn start_with_scram(
        listen: SocketAddr,
        advertised: Option<SocketAddr>,
        storage: &Storage,
        users: &[(&str, &str)],
    ) -> Result<Self> {
        if *storage == Storage::Memory {
            return Err(Error::Storage {
                message: "SCRAM users are kept in the storage: use durable storage".into(),
            });
        }
        let addr = reserve(listen)?;
        let url_of = |addr: SocketAddr| {
            Url::parse(&format!("tcp://{addr}")).map_err(|e| Error::Storage {
                message: format!("bad listener address {addr}: {e}"),
            })
        };
        let (url, advertised) = (url_of(addr)?, url_of(advertised.unwrap_or(addr))?);
        let storage_url = storage.url()?;
        let cancellation = CancellationToken::new();
        let started = Instant::now();
        let mut broker = loop {
            let built = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
                .node_id(tansu_broker::NODE_ID)
                .cluster_id(CLUSTER_ID)
                .incarnation_id(uuid::Uuid::new_v4())
                .advertised_listener(advertised.clone())
                .storage(storage_url.clone())
                .listener(url.clone())
                .schema_registry(None)
                .otlp_endpoint_url(None)
                .authentication(true)
                .tls_server_config(None)
                .silent(true)
                .build()
                .await;
            match built {
                Ok(broker) => break broker,
                // a broker of this process that was just stopped may still hold the file
                Err(e)
                    if e.to_string().contains("locked")
                        && started.elapsed() < Duration::from_secs(10) =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(Error::Embedded(Box::new(e))),
            }
        };
        let task = tokio::spawn(async move { broker.serve(Instant::now()).await });
        let broker = Self::ready(addr, task, cancellation).await?;
        // the users, once the broker has registered its cluster in the storage
        let closing = CancellationToken::new();
        let container = open_storage(&advertised, &storage_url, &closing).await?;
        for (name, password) in users {
            container
                .upsert_user_scram_credential(
                    name,
                    tansu_sans_io::ScramMechanism::Scram256,
                    scram_sha256(password),
                )
                .await
                .map_err(|e| Error::Storage {
                    message: format!("cannot store the SCRAM credential of {name}: {e}"),
                })?;
        }
        closing.cancel();
        Ok(broker)
    }

    /// Waits until the broker task accepts connections on `addr`.
    async fn ready(
        addr: SocketAddr,
        task: JoinHandle<Result<(), tansu_broker::Error>>,
        cancellation: CancellationToken,
    ) -> Result<Self> {
        let started = Instant::now();
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if task.is_finished() {
                return Err(match task.await {
                    Ok(Err(e)) if e.to_string().contains("in use") => Error::PortInUse { addr },
                    Ok(Err(e)) => Error::Embedded(Box::new(e)),
                    _ => Error::Storage {
                        message: "the broker stopped during start-up".into(),
                    },
                });
            }
            if started.elapsed() > Duration::from_secs(10) {
                task.abort();
                return Err(Error::Storage {
                    message: format!("the broker did not accept connections on {addr} within 10 s"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::debug!(%addr, "embedded broker ready");
        Ok(Self {
            addr,
            task: Some(task),
            cancellation,
        })
    }

    /// The address clients bootstrap from (`127.0.0.1:9092`).
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The socket address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the broker: closes the listener and every connection. SQLite storage commits each
    /// request as it is served, so nothing acknowledged is lost.
    pub async fn stop(mut self) {
        self.cancellation.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.cancellation.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A SCRAM-SHA-256 credential of `password` (RFC 5802: salted password by PBKDF2, then the
/// stored key and the server key), as a broker keeps it.
fn scram_sha256(password: &str) -> tansu_storage::ScramCredential {
    use hmac::{Hmac, Mac as _};
    use sha2::{Digest as _, Sha256};
    const ITERATIONS: u32 = 4096;
    let salt: [u8; 16] = rand::random();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, ITERATIONS, &mut salted);
    let hmac = |key: &[u8], text: &[u8]| {
        // any key length is valid for HMAC
        let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(text);
        mac.finalize().into_bytes()
    };
    let client_key = hmac(&salted, b"Client Key");
    tansu_storage::ScramCredential {
        salt: bytes::Bytes::copy_from_slice(&salt),
        iterations: ITERATIONS as i32,
        stored_key: bytes::Bytes::copy_from_slice(&Sha256::digest(client_key)),
        server_key: bytes::Bytes::copy_from_slice(&hmac(&salted, b"Server Key")),
    }
}

/// Opens tansu's storage. A broker of this process that was just stopped may still be closing
/// the same SQLite file; opening waits for it (up to 10 s) instead of failing.
async fn open_storage(
    advertised: &Url,
    storage: &Url,
    cancellation: &CancellationToken,
) -> Result<StorageContainer> {
    let started = Instant::now();
    loop {
        let opened = StorageContainer::builder()
            .cluster_id(CLUSTER_ID)
            .node_id(tansu_broker::NODE_ID)
            .advertised_listener(advertised.clone())
            .storage(storage.clone())
            .schema_registry(None)
            .lake_house(None)
            .cancellation(cancellation.clone())
            .silent(true)
            .build()
            .await;
        match opened {
            Ok(storage) => return Ok(storage),
            Err(e)
                if e.to_string().contains("locked")
                    && started.elapsed() < Duration::from_secs(10) =>
            {
                tracing::debug!(error = %e, "storage busy, retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(Error::Storage {
                    message: format!("cannot open {storage}: {e}"),
                })
            }
        }
    }
}

/// Checks that `listen` is free (resolving port 0 to a free port) and says so clearly if not.
fn reserve(listen: SocketAddr) -> Result<SocketAddr> {
    let probe = TcpListener::bind(listen).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse { addr: listen }
        } else {
            Error::Bind {
                addr: listen,
                source,
            }
        }
    })?;
    probe.local_addr().map_err(|source| Error::Bind {
        addr: listen,
        source,
    })
}
