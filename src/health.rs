//! Health of a process's HTTP servers, for orchestrators: `/healthz` answers 200 while the
//! process serves (liveness); `/readyz` answers 200 once every check of the server holds, else
//! 503 with each check and whether it holds (readiness). A check is a function read at each
//! request, so readiness follows the component's state (a gateway that loses its partitions is
//! not ready again until it holds some).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use axum::{http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use serde_json::json;

type Probe = Arc<dyn Fn() -> bool + Send + Sync>;

/// The readiness checks of one HTTP server; cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(String, Probe)>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("checks", &self.states())
            .finish()
    }
}

/// A check set by its owner once it holds.
#[derive(Debug, Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    /// The check holds (or no longer does).
    pub fn set(&self, holds: bool) {
        self.0.store(holds, Ordering::Release);
    }
}

impl Readiness {
    /// A check named `name` that holds while `probe` answers true.
    pub fn add(&self, name: &str, probe: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((name.to_owned(), Arc::new(probe)));
    }

    /// A check named `name` that holds once its [`Flag`] is set.
    pub fn flag(&self, name: &str) -> Flag {
        let flag = Flag::default();
        let read = flag.0.clone();
        self.add(name, move || read.load(Ordering::Acquire));
        flag
    }

    /// Each check and whether it holds, in the order added.
    pub fn states(&self) -> Vec<(String, bool)> {
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(name, probe)| (name.clone(), probe()))
            .collect()
    }

    /// Whether every check holds.
    pub fn ready(&self) -> bool {
        self.states().iter().all(|(_, holds)| *holds)
    }

    /// `/healthz` and `/readyz`.
    pub fn routes(&self) -> Router {
        let readiness = self.clone();
        Router::new()
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route(
                "/readyz",
                get(move || {
                    let states = readiness.states();
                    async move {
                        let ready = states.iter().all(|(_, holds)| *holds);
                        let checks: serde_json::Map<String, serde_json::Value> = states
                            .into_iter()
                            .map(|(name, holds)| {
                                (name, json!(if holds { "ready" } else { "waiting" }))
                            })
                            .collect();
                        let status = if ready {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        };
                        let body = json!({
                            "status": if ready { "ready" } else { "waiting" },
                            "checks": checks,
                        });
                        (status, Json(body)).into_response()
                    }
                }),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt as _;

    async fn get(router: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = router
            .clone()
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn ready_once_every_check_holds_live_all_along() {
        let readiness = Readiness::default();
        let registered = readiness.flag("products registered");
        let partitions = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let held = partitions.clone();
        readiness.add("gateway assigned", move || held.load(Ordering::Relaxed) > 0);
        let router = readiness.routes();

        assert_eq!(get(&router, "/healthz").await.0, StatusCode::OK);
        let (status, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["products registered"], "waiting");

        registered.set(true);
        let (status, body) = get(&router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["products registered"], "ready");
        assert_eq!(body["checks"]["gateway assigned"], "waiting");

        partitions.store(4, Ordering::Relaxed);
        assert_eq!(get(&router, "/readyz").await.0, StatusCode::OK);
        // a gateway that loses its partitions is not ready any more
        partitions.store(0, Ordering::Relaxed);
        assert_eq!(
            get(&router, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
