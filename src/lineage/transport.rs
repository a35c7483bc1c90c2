//! Where run events go: an HTTP endpoint (OpenLineage's HTTP transport: `POST
//! <url>/api/v1/lineage`, JSON, an optional bearer token) or a file of JSON lines. One task
//! sends the events in order; a failure is logged and the event dropped.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;
use tokio::{io::AsyncWriteExt as _, sync::mpsc};

/// The path OpenLineage's HTTP transport posts to.
const ENDPOINT: &str = "api/v1/lineage";

/// A transport.
#[derive(Debug)]
pub(super) enum Transport {
    /// POST each event.
    Http {
        /// `<url>/api/v1/lineage`.
        endpoint: String,
        /// The bearer token.
        api_key: Option<String>,
    },
    /// Append each event as a line.
    File(PathBuf),
}

impl Transport {
    /// The HTTP transport of the server at `url`.
    pub(super) fn http(url: &str, api_key: Option<&str>) -> Self {
        Self::Http {
            endpoint: format!("{}/{ENDPOINT}", url.trim_end_matches('/')),
            api_key: api_key.map(str::to_owned),
        }
    }

    /// Sends every event `events` yields until every sender is dropped.
    pub(super) async fn run(self, mut events: mpsc::UnboundedReceiver<Value>) {
        // only the HTTP transport needs a client (and the TLS provider `main` installs)
        let client = matches!(self, Self::Http { .. }).then(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        });
        let mut file = None;
        while let Some(event) = events.recv().await {
            let sent = match &self {
                Self::Http { endpoint, api_key } => {
                    let Some(client) = &client else {
                        continue;
                    };
                    let mut request = client
                        .post(endpoint)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(event.to_string());
                    if let Some(key) = api_key {
                        request = request.bearer_auth(key);
                    }
                    request
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                Self::File(path) => append(&mut file, path, &event).await,
            };
            if let Err(error) = sent {
                tracing::warn!(%error, event_type = %event["eventType"], job = %event["job"]["name"], "OpenLineage event not delivered");
            }
        }
        if let Some(mut file) = file {
            file.flush().await.ok();
        }
    }
}

async fn append(
    file: &mut Option<tokio::fs::File>,
    path: &PathBuf,
    event: &Value,
) -> Result<(), String> {
    if file.is_none() {
        *file = Some(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await
                .map_err(|e| format!("opening {}: {e}", path.display()))?,
        );
    }
    let mut line = serde_json::to_vec(event).map_err(|e| e.to_string())?;
    line.push(b'\n');
    match file {
        Some(f) => f.write_all(&line).await.map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_transport_writes_one_event_per_line_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lineage.jsonl");
        let (sender, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(Transport::File(path.clone()).run(receiver));
        for n in 0..3 {
            sender.send(serde_json::json!({ "n": n })).unwrap();
        }
        drop(sender);
        task.await.unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines,
            vec![
                serde_json::json!({"n": 0}),
                serde_json::json!({"n": 1}),
                serde_json::json!({"n": 2})
            ]
        );
    }
}
