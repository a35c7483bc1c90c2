//! Shared bench fixture: the repository's products on a broker, with their contracts in a
//! registry served on an ephemeral port.

use std::path::Path;

use meshline::{
    broker::{
        self,
        embedded::{EmbeddedBroker, Storage},
    },
    product::Catalog,
    registry::Registry,
};
use tokio_util::sync::CancellationToken;

/// Creates the products' topics on `bootstrap`, registers their contracts in a registry on the
/// same broker, serves it until `stop`, and returns its URL.
pub async fn serve_registry(bootstrap: &str, stop: CancellationToken) -> String {
    let catalog = Catalog::load(std::path::Path::new("config")).expect("catalog");
    broker::ensure_topics(bootstrap, &catalog)
        .await
        .expect("topics");
    let registry = Registry::start(bootstrap, stop.clone())
        .await
        .expect("registry");
    for product in catalog.iter() {
        registry
            .register_product(product)
            .await
            .expect("registered");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    meshline::server::spawn(listener, meshline::registry::http::router(registry), stop);
    url
}

/// The embedded broker on an ephemeral port: in memory, or with `MESHLINE_BENCH_STORAGE=sqlite`
/// on the durable storage `meshline up` uses (its file in `dir`).
pub async fn start_broker(dir: &Path) -> EmbeddedBroker {
    let storage = match std::env::var("MESHLINE_BENCH_STORAGE").as_deref() {
        Ok("sqlite") => Storage::in_dir(dir),
        _ => Storage::Memory,
    };
    println!("storage: {storage:?}");
    EmbeddedBroker::start("127.0.0.1:0".parse().expect("addr"), &storage)
        .await
        .expect("broker")
}
