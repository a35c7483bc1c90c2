//! Traces over OTLP, received by an OTLP/HTTP receiver in the test: an application's span
//! around an SDK send, the SDK's `sdk_send` span, and `meshline up`'s spans (exported with
//! `--otlp-endpoint`) are one trace per event: the gateway's check is the child of the send;
//! the HTTP ingress request continues its caller's `traceparent` and the check of its event is
//! its child; the product topic's record carries the trace context as `ce_traceparent` and as
//! plain `traceparent`; the snapshotter's window writing is a span too.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, routing::post, Router};
use meshline::{demo::events::PlayEvent, sdk::Producer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::any_value::Value as AnyValue,
};
use prost::Message as _;
use rdkafka::{consumer::Consumer as _, message::Headers as _, Message as _};
use tracing_subscriber::layer::SubscriberExt as _;

mod common;
use common::*;

/// A span as received.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Span>>>;

async fn receive(State(spans): State<Spans>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).unwrap();
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.lock().unwrap().push(Span {
                service: service.clone(),
                name: span.name,
                trace: hex::encode(span.trace_id),
                id: hex::encode(span.span_id),
                parent: hex::encode(span.parent_span_id),
                attributes: span
                    .attributes
                    .iter()
                    .map(|a| {
                        (
                            a.key.clone(),
                            text(a.value.as_ref().and_then(|v| v.value.as_ref())),
                        )
                    })
                    .collect(),
            });
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The player product with its rules and a minute view that closes after 1 s of quiet, in a
/// configuration directory of its own.
fn config(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("config/products/player/play-events.yaml")).unwrap();
    let head = &text[..text.find("views:").unwrap()];
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::copy(
        root.join("schemas/player/play-event.avsc"),
        config.join("play-event.avsc"),
    )
    .unwrap();
    std::fs::write(
        config.join("plays.yaml"),
        format!(
            "{}views:\n  - {{name: minutes, kind: events, window: minute, idle_timeout: 1s}}\naccess:\n  producers: [player]\n",
            head.replace("../../../schemas/player/play-event.avsc", "play-event.avsc")
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "current_thread")]
async fn an_events_trace_goes_from_the_sdk_send_through_the_gateway_check_and_the_ingress() {
    meshline::registry::client::install_crypto_provider();
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let data = tempfile::tempdir().unwrap();
    let at = UpAt::new();
    let (kafka, registry, http) = (at.kafka.clone(), at.registry.clone(), at.http.clone());
    let mut up = at
        .command(&config(data.path()), data.path())
        .args(["--otlp-endpoint", &collector])
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    let banner = wait_for(&lines, "Stop with Ctrl-C", 60);
    let tokens = tokens_of(&banner);

    // the application: its own tracer, exporting to the same collector
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{collector}/v1/traces"))
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("checkout")
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("checkout")));
    let default = tracing::subscriber::set_default(subscriber);
    let producer = Producer::builder(&kafka, &format!("http://{registry}"))
        .source("/player/web")
        .event::<PlayEvent>()
        .build()
        .await
        .unwrap();
    let mut rng = rand::rng();
    let at = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut good = PlayEvent::random(&mut rng, at);
    good.country = "SE".into();
    let mut other = PlayEvent::random(&mut rng, at);
    other.country = "FI".into();
    {
        use tracing::Instrument as _;
        let play = tracing::info_span!("play");
        async {
            producer.send(&good).await.unwrap();
            producer.send(&other).await.unwrap();
        }
        .instrument(play)
        .await;
    }
    drop(default);
    tokio::task::spawn_blocking(move || provider.shutdown().unwrap())
        .await
        .unwrap();

    // the HTTP ingress, called inside a trace of the caller
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = format!("00-{caller_trace}-00f067aa0ba902b7-01");
    // two minutes later: the minute of the SDK's events closes
    let mut event = PlayEvent::random(&mut rng, at + chrono::Duration::minutes(2));
    event.country = "NO".into();
    let sent = reqwest::Client::new()
        .post(format!("http://{http}/v1/products/player.play-events/events"))
        .header("authorization", format!("Bearer {}", tokens["player"].as_str().unwrap()))
        .header("traceparent", &caller)
        .body(serde_json::to_vec(&serde_json::json!({
            "specversion": "1.0", "id": "traced-1", "source": "/player/web",
            "type": "com.example.player.track.played", "datacontenttype": "application/json",
            "time": chrono::DateTime::<chrono::Utc>::from_timestamp_millis(event.started_at).unwrap().to_rfc3339(),
            "data": serde_json::to_value(&event).unwrap(),
        })).unwrap())
        .header("content-type", "application/cloudevents+json")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202, "{}", sent.text().await.unwrap());

    let find = |name: &str, service: &str| -> Vec<Span> {
        spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name && s.service == service)
            .cloned()
            .collect()
    };
    within(
        60,
        "the gateway's checks and a snapshot window, exported",
        async {
            loop {
                if find("gateway_check", "meshline").len() >= 3
                    && !find("snapshot_windows", "meshline").is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        },
    )
    .await;

    // SDK: the application's span → sdk_send → the gateway's check, one trace per event
    let play = find("play", "checkout");
    assert_eq!(play.len(), 1);
    let sends = find("sdk_send", "checkout");
    assert_eq!(sends.len(), 2);
    let checks = find("gateway_check", "meshline");
    for send in &sends {
        assert_eq!(send.trace, play[0].trace);
        assert_eq!(send.parent, play[0].id);
        let check = checks
            .iter()
            .find(|c| c.parent == send.id)
            .unwrap_or_else(|| panic!("no gateway check child of {send:?} in {checks:?}"));
        assert_eq!(check.trace, play[0].trace);
        assert_eq!(check.attributes["product"], "player.play-events");
    }
    let mut outcomes: Vec<&str> = checks
        .iter()
        .filter(|c| c.trace == play[0].trace)
        .map(|c| c.attributes["outcome"].as_str())
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["accepted", "accepted"]);

    // HTTP ingress: the request continues the caller's trace; the check is its child
    let request = find("ingress_request", "meshline");
    let request = request
        .iter()
        .find(|r| r.trace == caller_trace)
        .unwrap_or_else(|| panic!("no ingress span in the caller's trace: {request:?}"));
    assert_eq!(request.parent, "00f067aa0ba902b7");
    assert!(
        checks
            .iter()
            .any(|c| c.trace == caller_trace && c.parent == request.id),
        "{checks:?}"
    );

    // the product topic's records carry the trace as CloudEvents and as OpenTelemetry read it
    let consumer: rdkafka::consumer::BaseConsumer =
        consumer_config(&kafka, "traces-test").create().unwrap();
    consumer.subscribe(&["player.play-events"]).unwrap();
    let mut traced = 0;
    within(30, "the two accepted records", async {
        while traced < 2 {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                let headers = message.headers().unwrap();
                let header = |key: &str| {
                    headers
                        .iter()
                        .find(|h| h.key == key)
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                let plain = header("traceparent").unwrap();
                assert_eq!(Some(plain.clone()), header("ce_traceparent"));
                assert!(
                    plain.contains(&play[0].trace) || plain.contains(caller_trace),
                    "{plain}"
                );
                traced += 1;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let windows = find("snapshot_windows", "meshline");
    assert_eq!(windows[0].attributes["product"], "player.play-events");
    assert_eq!(windows[0].attributes["view"], "minutes");
    interrupt(&up);
    assert!(wait_exit(&mut up, 60).success());
}
