//! OpenLineage events of a running meshline (`up --demo --openlineage-url`), received by a small
//! HTTP server in the test as a lineage backend would receive them: the gateway's run per
//! product (START, RUNNING, COMPLETE with counts and rule results; the derived product's run
//! reads its upstream product) and a run per snapshot window; every event and facet checked
//! against OpenLineage's published JSON Schemas.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, routing::post, Json, Router};
use serde_json::Value;

mod common;
use common::*;

type Received = Arc<Mutex<Vec<Value>>>;

async fn receive(State(events): State<Received>, Json(event): Json<Value>) -> &'static str {
    events.lock().unwrap().push(event);
    "ok"
}

fn of<'a>(events: &'a [Value], kind: &str, job: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["eventType"] == kind && e["job"]["name"] == job)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_meshline_reports_its_gateway_and_snapshot_runs_as_valid_openlineage_events() {
    let events: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/api/v1/lineage", post(receive))
        .with_state(events.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let data = tempfile::tempdir().unwrap();
    let at = UpAt::new();
    let addr = at.kafka.clone();
    let mut up = at
        .command(&repo_config(), data.path())
        .arg("--demo")
        .args(["--openlineage-url", &format!("http://{backend}")])
        .args(["--openlineage-interval", "1s"])
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    wait_for(&lines, "Stop with Ctrl-C", 60);

    // a RUNNING report of the derived product, and a snapshot window of it
    within(90, "a gateway report and a snapshot window", async {
        loop {
            let seen = events.lock().unwrap().clone();
            let running = of(&seen, "RUNNING", "gateway.artists.artist-plays");
            let window = of(
                &seen,
                "COMPLETE",
                "snapshot.artists.artist-plays.daily-plays",
            );
            let counted = running.iter().any(|e| {
                e["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"]
                    .as_u64()
                    .is_some_and(|n| n > 0)
            });
            if counted && !window.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    // a snapshotter that cannot reach its registry: each run of a product's loop fails, said
    // in a FAIL event with the error (here to a file)
    let failing = data.path().join("failing.jsonl");
    let mut snapshotter = meshline()
        .args(["snapshotter", "--bootstrap", &addr])
        .args(["--registry-url", &format!("http://{}", free_port())])
        .args(["--http-listen", &free_port()])
        .args(["--snapshotter-group-prefix", "failing"])
        .arg("--openlineage-file")
        .arg(&failing)
        .arg("--config")
        .arg(repo_config())
        .arg("--data-dir")
        .arg(data.path().join("failing"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _failing_guard = KillOnDrop(snapshotter.id());
    let fail = within(90, "a FAIL event of the failing snapshotter", async {
        loop {
            let text = std::fs::read_to_string(&failing).unwrap_or_default();
            let fail = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .find(|e| e["eventType"] == "FAIL");
            if let Some(fail) = fail {
                break fail;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    interrupt(&snapshotter);
    wait_exit(&mut snapshotter, 60);
    assert!(
        fail["job"]["name"]
            .as_str()
            .is_some_and(|j| j.starts_with("snapshotter.")),
        "{fail}"
    );
    assert!(
        fail["run"]["facets"]["errorMessage"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{fail}"
    );

    interrupt(&up);
    assert!(wait_exit(&mut up, 60).success());
    let seen = events.lock().unwrap().clone();

    // every product's gateway run started and completed, once, with the same run id
    for id in [
        "player.play-events",
        "artists.artist-plays",
        "artists.profile-changes",
        "labels.onboarded",
    ] {
        let job = format!("gateway.{id}");
        let start = of(&seen, "START", &job);
        let complete = of(&seen, "COMPLETE", &job);
        assert_eq!((start.len(), complete.len()), (1, 1), "{job}");
        assert_eq!(start[0]["run"]["runId"], complete[0]["run"]["runId"]);
        assert_eq!(complete[0]["inputs"][0]["name"], format!("{id}.ingress"));
        let outputs: Vec<&str> = complete[0]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(outputs, [id.to_owned(), format!("{id}.dlq")]);
    }
    // the demo's plays all pass their rules; the counts add up
    let plays = of(&seen, "COMPLETE", "gateway.player.play-events")[0];
    let ingress = &plays["inputs"][0];
    let handled = ingress["inputFacets"]["dataQualityMetrics"]["rowCount"]
        .as_u64()
        .unwrap();
    let written = plays["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"]
        .as_u64()
        .unwrap();
    let dead = plays["outputs"][1]["outputFacets"]["outputStatistics"]["rowCount"]
        .as_u64()
        .unwrap();
    assert!(
        handled > 0 && handled == written + dead,
        "{handled} {written} {dead}"
    );
    let assertions = ingress["inputFacets"]["dataQualityAssertions"]["assertions"]
        .as_array()
        .unwrap();
    assert_eq!(assertions.len(), 2, "{assertions:?}");
    assert!(
        assertions.iter().all(|a| a["success"] == true),
        "{assertions:?}"
    );
    assert_eq!(ingress["namespace"], format!("kafka://{addr}"));
    assert!(
        ingress["facets"]["schema"]["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["name"] == "duration_ms")),
        "{ingress}"
    );
    // lineage: the derived product's run reads the player's plays
    let derived = of(&seen, "COMPLETE", "gateway.artists.artist-plays")[0];
    assert!(
        derived["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "player.play-events"),
        "{derived}"
    );
    // a snapshot window is a batch run over its nominal window, from the topic to the view
    let window = of(
        &seen,
        "COMPLETE",
        "snapshot.artists.artist-plays.daily-plays",
    )[0];
    assert!(window["run"]["facets"]["nominalTime"]["nominalStartTime"].is_string());
    assert_eq!(window["inputs"][0]["name"], "artists.artist-plays");
    assert_eq!(window["outputs"][0]["namespace"], "file");
    assert!(window["outputs"][0]["name"]
        .as_str()
        .unwrap()
        .ends_with("snapshots/artists/artist-plays/daily-plays"));
    assert!(
        window["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"]
            .as_u64()
            .unwrap()
            > 0
    );

    // the product-level runs of the snapshotter: started, and completed at the stop
    let product_runs = of(&seen, "COMPLETE", "snapshotter.artists.artist-plays");
    assert_eq!(product_runs.len(), 1, "{product_runs:?}");

    let file = data.path().join("events.jsonl");
    let text: String = seen.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&file, text).unwrap();
    common::assert_valid_openlineage(&file);
    common::assert_valid_openlineage(&failing);
}
