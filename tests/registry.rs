//! The schema registry against a real broker, driven through its REST API with raw requests
//! and with a third-party Confluent client (`schema_registry_converter`).

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{registry, sqlite_broker};
use meshline::product::Compatibility;
use reqwest::Method;
use serde_json::{json, Value};

const CT: &str = "application/vnd.schemaregistry.v1+json";

/// Raw HTTP against one registry.
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.to_owned(),
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.raw(Method::GET, path, None, Vec::new()).await
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        self.raw(method, path, Some(CT), body.to_string().into_bytes())
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::POST, path, body).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(Method::PUT, path, body).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.raw(Method::DELETE, path, None, Vec::new()).await
    }

    /// Registers `schema` under `subject`: `Ok(id)` or `Err(error_code)`.
    async fn register(&self, subject: &str, schema: &str) -> Result<u64, u64> {
        let (status, body) = self
            .post(
                &format!("/subjects/{subject}/versions"),
                json!({ "schema": schema }),
            )
            .await;
        if status == 200 {
            Ok(body["id"].as_u64().unwrap())
        } else {
            Err(body["error_code"].as_u64().unwrap())
        }
    }
}

fn record(fields: &[(&str, &str, Option<Value>)]) -> String {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(name, kind, default)| {
            let mut f = json!({ "name": name, "type": kind });
            if let Some(d) = default {
                f["default"] = d.clone();
            }
            f
        })
        .collect();
    json!({ "type": "record", "name": "Play", "namespace": "test", "fields": fields }).to_string()
}

fn code(body: &Value) -> u64 {
    body["error_code"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_answers_like_confluents_registry() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, _stop) = registry(&broker.bootstrap()).await;
    let http = Http::new(&url);
    let v1 = record(&[("track", "string", None)]);
    let v2 = record(&[("track", "string", None), ("ms", "long", Some(json!(0)))]);

    assert_eq!(http.get("/").await, (200, json!({})));
    assert_eq!(
        http.get("/schemas/types").await,
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );
    assert_eq!(http.get("/subjects").await, (200, json!([])));

    // register, and register again: same id, no new version
    let id1 = http.register("plays-value", &v1).await.unwrap();
    assert_eq!(http.register("plays-value", &v1).await.unwrap(), id1);
    let id2 = http.register("plays-value", &v2).await.unwrap();
    assert_ne!(id1, id2);
    // the same schema in another subject keeps its id, whitespace aside
    let spaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1).unwrap()).unwrap();
    assert_eq!(http.register("other-value", &spaced).await.unwrap(), id1);

    assert_eq!(
        http.get("/subjects").await,
        (200, json!(["other-value", "plays-value"]))
    );
    assert_eq!(
        http.get("/subjects?subjectPrefix=pl").await,
        (200, json!(["plays-value"]))
    );
    assert_eq!(
        http.get("/subjects/plays-value/versions").await,
        (200, json!([1, 2]))
    );
    let (status, latest) = http.get("/subjects/plays-value/versions/latest").await;
    assert_eq!(status, 200);
    assert_eq!(latest["subject"], "plays-value");
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["id"], id2);
    assert!(
        latest.get("schemaType").is_none(),
        "AVRO is implied: {latest}"
    );
    let parsed: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(parsed["fields"][1]["default"], 0, "defaults are kept");
    assert_eq!(
        http.get("/subjects/plays-value/versions/-1").await.1["version"],
        2
    );
    let (status, first) = http.get("/subjects/plays-value/versions/1").await;
    assert_eq!((status, first["id"].as_u64()), (200, Some(id1)));
    let (status, raw) = http.get("/subjects/plays-value/versions/1/schema").await;
    assert_eq!(status, 200);
    assert_eq!(raw["name"], "Play", "the schema itself: {raw}");

    // lookup
    let (status, found) = http
        .post("/subjects/plays-value", json!({ "schema": v1 }))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (found["version"].as_u64(), found["id"].as_u64()),
        (Some(1), Some(id1))
    );
    let other = record(&[("other", "string", None)]);
    let (status, body) = http
        .post("/subjects/plays-value", json!({ "schema": other }))
        .await;
    assert_eq!((status, code(&body)), (404, 40403));

    // by id
    let (status, body) = http.get(&format!("/schemas/ids/{id1}")).await;
    assert_eq!(status, 200);
    assert!(body["schema"].as_str().unwrap().contains("track"));
    let (status, raw) = http.get(&format!("/schemas/ids/{id1}/schema")).await;
    assert_eq!((status, &raw["type"]), (200, &json!("record")));
    assert_eq!(
        http.get(&format!("/schemas/ids/{id1}/versions")).await,
        (
            200,
            json!([{"subject": "other-value", "version": 1}, {"subject": "plays-value", "version": 1}])
        )
    );
    assert_eq!(
        http.get(&format!("/schemas/ids/{id1}/subjects")).await,
        (200, json!(["other-value", "plays-value"]))
    );

    // compatibility
    let breaking = record(&[("track", "string", None), ("country", "string", None)]);
    let (status, body) = http
        .post(
            "/compatibility/subjects/plays-value/versions/latest",
            json!({ "schema": v2 }),
        )
        .await;
    assert_eq!((status, &body), (200, &json!({"is_compatible": true})));
    let (status, body) = http
        .post(
            "/compatibility/subjects/plays-value/versions/latest?verbose=true",
            json!({ "schema": breaking }),
        )
        .await;
    assert_eq!((status, &body["is_compatible"]), (200, &json!(false)));
    assert!(
        body["messages"][0].as_str().unwrap().contains("country"),
        "{body}"
    );
    let (status, body) = http
        .post(
            "/compatibility/subjects/plays-value/versions",
            json!({ "schema": v2 }),
        )
        .await;
    assert_eq!((status, &body["is_compatible"]), (200, &json!(true)));
    let (status, body) = http
        .register("plays-value", &breaking)
        .await
        .map_or_else(|c| (409, c), |id| (200, id));
    assert_eq!((status, body), (409, 409));

    // config
    assert_eq!(
        http.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        http.put("/config", json!({"compatibility": "FULL"})).await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(http.get("/config").await.1["compatibilityLevel"], "FULL");
    assert_eq!(code(&http.get("/config/plays-value").await.1), 40408);
    assert_eq!(
        http.get("/config/plays-value?defaultToGlobal=true").await.1["compatibilityLevel"],
        "FULL"
    );
    assert_eq!(
        http.put("/config/plays-value", json!({"compatibility": "NONE"}))
            .await
            .0,
        200
    );
    assert_eq!(
        http.get("/config/plays-value").await.1["compatibilityLevel"],
        "NONE"
    );
    // NONE lets the breaking schema in
    assert!(http.register("plays-value", &breaking).await.is_ok());
    assert_eq!(
        http.delete("/config/plays-value").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        http.delete("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        http.get("/config").await.1["compatibilityLevel"],
        "BACKWARD"
    );

    // mode
    assert_eq!(http.get("/mode").await, (200, json!({"mode": "READWRITE"})));
    assert_eq!(code(&http.get("/mode/plays-value").await.1), 40409);
    assert_eq!(
        http.put("/mode/plays-value", json!({"mode": "READONLY"}))
            .await,
        (200, json!({"mode": "READONLY"}))
    );
    let v4 = record(&[
        ("track", "string", None),
        ("country", "string", None),
        ("x", "int", Some(json!(1))),
    ]);
    assert_eq!(http.register("plays-value", &v4).await, Err(42205));
    assert_eq!(code(&http.delete("/subjects/plays-value").await.1), 42205);
    assert_eq!(
        http.delete("/mode/plays-value").await,
        (200, json!({"mode": "READONLY"}))
    );
    assert_eq!(
        http.put("/mode", json!({"mode": "READONLY_OVERRIDE"}))
            .await
            .0,
        200
    );
    assert_eq!(http.register("other-value", &v2).await, Err(42205));
    assert_eq!(http.put("/mode", json!({"mode": "READWRITE"})).await.0, 200);

    // references
    let user = r#"{"type":"record","name":"User","namespace":"test","fields":[{"name":"id","type":"string"}]}"#;
    let user_id = http.register("user-value", user).await.unwrap();
    let with_ref = r#"{"type":"record","name":"Session","namespace":"test","fields":[{"name":"user","type":"test.User"}]}"#;
    let (status, body) = http
        .post(
            "/subjects/session-value/versions",
            json!({"schema": with_ref, "references": [{"name": "test.User", "subject": "user-value", "version": 1}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let session_id = body["id"].as_u64().unwrap();
    assert_ne!(session_id, user_id);
    assert_eq!(
        http.get("/subjects/user-value/versions/1/referencedby")
            .await,
        (200, json!([session_id]))
    );
    let (_, body) = http.get(&format!("/schemas/ids/{session_id}")).await;
    assert_eq!(body["references"][0]["subject"], "user-value");

    // data-contract metadata and rules are stored and returned
    let rule_set = json!({"domainRules": [{"name": "positive", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": "message.ms >= 0", "onFailure": "DLQ"}]});
    let metadata = json!({"properties": {"owner": "player-squad"}});
    let (status, body) = http
        .post(
            "/subjects/contract-value/versions",
            json!({"schema": v2, "ruleSet": rule_set, "metadata": metadata}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, latest) = http.get("/subjects/contract-value/versions/latest").await;
    assert_eq!(latest["ruleSet"], rule_set);
    assert_eq!(latest["metadata"], metadata);
    assert_ne!(
        latest["id"].as_u64(),
        Some(id2),
        "a contract makes a new id"
    );

    // deletes: soft, then permanent
    assert_eq!(
        code(
            &http
                .delete("/subjects/plays-value/versions/1?permanent=true")
                .await
                .1
        ),
        40407
    );
    assert_eq!(
        http.delete("/subjects/plays-value/versions/1").await,
        (200, json!(1))
    );
    assert_eq!(
        code(&http.delete("/subjects/plays-value/versions/1").await.1),
        40406
    );
    assert_eq!(
        http.get("/subjects/plays-value/versions").await,
        (200, json!([2, 3]))
    );
    assert_eq!(
        http.get("/subjects/plays-value/versions?deleted=true")
            .await,
        (200, json!([1, 2, 3]))
    );
    assert_eq!(
        code(&http.get("/subjects/plays-value/versions/1").await.1),
        40402
    );
    assert_eq!(
        http.get("/subjects/plays-value/versions/1?deleted=true")
            .await
            .0,
        200
    );
    assert_eq!(
        http.delete("/subjects/plays-value/versions/1?permanent=true")
            .await,
        (200, json!(1))
    );
    assert_eq!(
        http.get("/subjects/plays-value/versions?deleted=true")
            .await,
        (200, json!([2, 3]))
    );
    assert_eq!(
        code(&http.delete("/subjects/other-value?permanent=true").await.1),
        40405
    );
    assert_eq!(
        http.delete("/subjects/other-value").await,
        (200, json!([1]))
    );
    assert_eq!(code(&http.delete("/subjects/other-value").await.1), 40404);
    assert!(!http
        .get("/subjects")
        .await
        .1
        .as_array()
        .unwrap()
        .contains(&json!("other-value")));
    assert!(http
        .get("/subjects?deleted=true")
        .await
        .1
        .as_array()
        .unwrap()
        .contains(&json!("other-value")));
    assert_eq!(
        http.delete("/subjects/other-value?permanent=true").await,
        (200, json!([1]))
    );
    assert_eq!(
        code(&http.get("/subjects/other-value/versions").await.1),
        40401
    );
    // every version that used id1 is gone: the id is gone with them
    assert_eq!(
        code(&http.get(&format!("/schemas/ids/{id1}")).await.1),
        40403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_confluents_error_codes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, _stop) = registry(&broker.bootstrap()).await;
    let http = Http::new(&url);
    let v1 = record(&[("track", "string", None)]);
    let id = http.register("plays-value", &v1).await.unwrap();
    let before = (
        http.get("/subjects?deleted=true").await,
        http.get("/subjects/plays-value/versions?deleted=true")
            .await,
        http.get("/config").await,
    );

    /// What was sent, the answer, and the status, error code and words the answer must have.
    type Case<'a> = (&'a str, (u16, Value), u16, u64, &'a str);
    let cases: Vec<Case> = vec![
        (
            "invalid JSON",
            http.raw(
                Method::POST,
                "/subjects/plays-value/versions",
                Some(CT),
                b"{\"schema\":".to_vec(),
            )
            .await,
            400,
            400,
            "not valid JSON",
        ),
        (
            "invalid Avro",
            http.post(
                "/subjects/plays-value/versions",
                json!({"schema": "{\"type\":\"recod\"}"}),
            )
            .await,
            422,
            42201,
            "Invalid schema",
        ),
        (
            "no schema",
            http.post("/subjects/plays-value/versions", json!({})).await,
            422,
            42201,
            "no \"schema\"",
        ),
        (
            "another schema type",
            http.post(
                "/subjects/plays-value/versions",
                json!({"schema": "<schema/>", "schemaType": "XML"}),
            )
            .await,
            422,
            42201,
            "XML",
        ),
        (
            "unknown subject",
            http.get("/subjects/nope/versions/1").await,
            404,
            40401,
            "nope",
        ),
        (
            "unknown version",
            http.get("/subjects/plays-value/versions/7").await,
            404,
            40402,
            "Version 7",
        ),
        (
            "invalid version",
            http.get("/subjects/plays-value/versions/first").await,
            422,
            42202,
            "'first'",
        ),
        (
            "unknown id",
            http.get("/schemas/ids/999").await,
            404,
            40403,
            "999",
        ),
        (
            "oversize body",
            http.raw(
                Method::POST,
                "/subjects/plays-value/versions",
                Some(CT),
                vec![b' '; (1 << 20) + 1],
            )
            .await,
            413,
            413,
            "1 MiB",
        ),
        (
            "wrong content type",
            http.raw(
                Method::POST,
                "/subjects/plays-value/versions",
                Some("application/x-www-form-urlencoded"),
                b"schema=x".to_vec(),
            )
            .await,
            415,
            415,
            "x-www-form-urlencoded",
        ),
        (
            "invalid compatibility level",
            http.put("/config", json!({"compatibility": "SIDEWAYS"}))
                .await,
            422,
            42203,
            "SIDEWAYS",
        ),
        (
            "invalid mode",
            http.put("/mode", json!({"mode": "WRITEONLY"})).await,
            422,
            42204,
            "WRITEONLY",
        ),
        (
            "id outside IMPORT mode",
            http.post(
                "/subjects/plays-value/versions",
                json!({"schema": v1, "id": 42}),
            )
            .await,
            422,
            42205,
            "IMPORT",
        ),
        (
            "unknown endpoint",
            http.get("/nothing/here").await,
            404,
            404,
            "/nothing/here",
        ),
    ];
    for (what, (status, body), want_status, want_code, mentions) in cases {
        assert_eq!(
            (status, code(&body)),
            (want_status, want_code),
            "{what}: {body}"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(mentions), "{what}: {message}");
    }

    let after = (
        http.get("/subjects?deleted=true").await,
        http.get("/subjects/plays-value/versions?deleted=true")
            .await,
        http.get("/config").await,
    );
    assert_eq!(before, after, "bad requests change nothing");
    assert_eq!(http.get(&format!("/schemas/ids/{id}")).await.0, 200);
    // application/json is accepted as well as Confluent's own type
    let v2 = record(&[("track", "string", None), ("ms", "long", Some(json!(0)))]);
    let (status, _) = http
        .raw(
            Method::POST,
            "/subjects/plays-value/versions",
            Some("application/json"),
            json!({"schema": v2}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_compatibility_mode_is_enforced_against_the_right_versions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, _stop) = registry(&broker.bootstrap()).await;
    let http = Http::new(&url);
    // Three histories (v1, v2 registered freely), and whether v3 is accepted in each mode.
    let s = |name: &str, default: Option<Value>| (name.to_owned(), default);
    /// Fields (name, default) of v1, v2 and v3.
    type History = [Vec<(String, Option<Value>)>; 3];
    let histories: Vec<(&str, History, [bool; 7])> = vec![
        (
            // a field added with a default, then its default removed
            "add",
            [
                vec![s("a", None)],
                vec![s("a", None), s("c", Some(json!("")))],
                vec![s("a", None), s("c", None)],
            ],
            // BACKWARD, BACKWARD_T, FORWARD, FORWARD_T, FULL, FULL_T, NONE
            [true, false, true, true, true, false, true],
        ),
        (
            // a field given a default, then removed
            "remove",
            [
                vec![s("a", None), s("b", None)],
                vec![s("a", None), s("b", Some(json!("")))],
                vec![s("a", None)],
            ],
            [true, true, true, false, true, false, true],
        ),
        (
            // a field renamed without an alias
            "rename",
            [vec![s("a", None)], vec![s("a", None)], vec![s("z", None)]],
            [false, false, false, false, false, false, true],
        ),
    ];
    for (history, versions, accepted) in histories {
        for (mode, accepted) in Compatibility::ALL.into_iter().zip(accepted) {
            let subject = format!("{history}-{}", mode.as_str().to_lowercase());
            let schemas: Vec<String> = versions
                .iter()
                .map(|fields| {
                    let fields: Vec<(&str, &str, Option<Value>)> = fields
                        .iter()
                        .map(|(n, d)| (n.as_str(), "string", d.clone()))
                        .collect();
                    record(&fields)
                })
                .collect();
            http.put(
                &format!("/config/{subject}"),
                json!({"compatibility": "NONE"}),
            )
            .await;
            http.register(&subject, &schemas[0]).await.unwrap();
            http.register(&subject, &schemas[1]).await.unwrap();
            http.put(
                &format!("/config/{subject}"),
                json!({"compatibility": mode.as_str()}),
            )
            .await;
            let (_, check) = http
                .post(
                    &format!("/compatibility/subjects/{subject}/versions?verbose=true"),
                    json!({"schema": schemas[2]}),
                )
                .await;
            let result = http.register(&subject, &schemas[2]).await;
            assert_eq!(
                result.is_ok(),
                accepted,
                "{history} under {mode}: {result:?}"
            );
            assert_eq!(
                check["is_compatible"],
                json!(accepted),
                "{history} under {mode}: {check}"
            );
            if !accepted {
                assert_eq!(result, Err(409));
            }
        }
    }
}

async fn snapshot(http: &Http) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut out = BTreeMap::new();
    let (_, subjects) = http.get("/subjects").await;
    for subject in subjects.as_array().unwrap() {
        let subject = subject.as_str().unwrap();
        let (_, versions) = http.get(&format!("/subjects/{subject}/versions")).await;
        let mut entries = Vec::new();
        for v in versions.as_array().unwrap() {
            let (_, body) = http.get(&format!("/subjects/{subject}/versions/{v}")).await;
            entries.push((
                body["version"].as_u64().unwrap(),
                body["id"].as_u64().unwrap(),
            ));
        }
        out.insert(subject.to_owned(), entries);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_of_registry_and_broker_loses_nothing_and_keeps_every_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, stop) = registry(&broker.bootstrap()).await;
    let http = Http::new(&url);
    for i in 0..5 {
        let fields: Vec<(String, Option<Value>)> = (0..=i)
            .map(|f| (format!("f{f}"), Some(json!(""))))
            .collect();
        let fields: Vec<(&str, &str, Option<Value>)> = fields
            .iter()
            .map(|(n, d)| (n.as_str(), "string", d.clone()))
            .collect();
        http.register("grow-value", &record(&fields)).await.unwrap();
    }
    http.register("other-value", &record(&[("x", "int", None)]))
        .await
        .unwrap();
    http.delete("/subjects/grow-value/versions/2").await;
    http.put("/config/grow-value", json!({"compatibility": "FULL"}))
        .await;
    http.put("/mode/other-value", json!({"mode": "READONLY"}))
        .await;
    let before = snapshot(&http).await;
    stop.cancel();
    broker.stop().await;

    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, _stop) = registry(&broker.bootstrap()).await;
    let http = Http::new(&url);
    assert_eq!(snapshot(&http).await, before);
    assert_eq!(
        http.get("/subjects/grow-value/versions?deleted=true")
            .await
            .1,
        json!([1, 2, 3, 4, 5])
    );
    assert_eq!(
        http.get("/config/grow-value").await.1["compatibilityLevel"],
        "FULL"
    );
    assert_eq!(http.get("/mode/other-value").await.1["mode"], "READONLY");
    // the next id continues after the highest one
    let next = http
        .register("new-value", &record(&[("n", "long", None)]))
        .await
        .unwrap();
    assert_eq!(next, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_agree_and_concurrent_registrations_never_share_an_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let (_a, url_a, _stop_a) = registry(&bootstrap).await;
    let (_b, url_b, _stop_b) = registry(&bootstrap).await;
    let a = std::sync::Arc::new(Http::new(&url_a));
    let b = std::sync::Arc::new(Http::new(&url_b));
    a.put("/config", json!({"compatibility": "NONE"})).await;

    // 24 writers on two instances: distinct schemas into one shared subject and into their
    // own subjects, plus one schema every writer registers.
    let shared = record(&[("same", "string", None)]);
    let mut tasks = Vec::new();
    for w in 0..24 {
        let http = if w % 2 == 0 { a.clone() } else { b.clone() };
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = record(&[(format!("w{w}").as_str(), "string", None)]);
            let in_shared = http.register("shared-value", &own).await.unwrap();
            let in_own = http.register(&format!("w{w}-value"), &own).await.unwrap();
            let same = http.register("same-value", &shared).await.unwrap();
            (in_shared, in_own, same)
        }));
    }
    let mut ids = HashSet::new();
    let mut same_ids = HashSet::new();
    for task in tasks {
        let (in_shared, in_own, same) = task.await.unwrap();
        assert_eq!(in_shared, in_own, "one schema, one id, in any subject");
        assert!(ids.insert(in_shared), "id {in_shared} given to two schemas");
        same_ids.insert(same);
    }
    assert_eq!(
        same_ids.len(),
        1,
        "one schema registered 24 times has one id"
    );
    assert!(!ids.contains(same_ids.iter().next().unwrap()));
    let (_, versions) = a.get("/subjects/shared-value/versions").await;
    assert_eq!(versions, json!((1..=24).collect::<Vec<_>>()));
    assert_eq!(
        a.get("/subjects/same-value/versions").await.1,
        json!([1]),
        "concurrent registrations of one schema make one version"
    );

    // both instances answer the same, once caught up
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (sa, sb) = (snapshot(&a).await, snapshot(&b).await);
        if sa == sb {
            assert_eq!(sa.len(), 26);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{sa:?} != {sb:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confluents_rust_client_registers_encodes_and_decodes() {
    use apache_avro::types::Value as Avro;
    use schema_registry_converter::{
        async_impl::{
            avro::{AvroDecoder, AvroEncoder},
            schema_registry::{get_schema_by_id, get_schema_by_subject, SrSettings},
        },
        schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
    };

    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, _stop) = registry(&broker.bootstrap()).await;
    let settings = SrSettings::new(url.clone());
    let schema = record(&[("track", "string", None), ("ms", "long", None)]);
    let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
        "plays".into(),
        false,
        SuppliedSchema::new(Some("test.Play".into()), SchemaType::Avro, schema.clone()),
    );
    let encoder = AvroEncoder::new(settings.clone());
    let bytes = encoder
        .encode(
            vec![
                ("track", Avro::String("t-1".into())),
                ("ms", Avro::Long(42)),
            ],
            strategy,
        )
        .await
        .unwrap();
    assert_eq!(bytes[0], 0, "Confluent wire format");
    let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());

    let decoder = AvroDecoder::new(settings.clone());
    let decoded = decoder.decode(Some(&bytes)).await.unwrap();
    assert_eq!(
        decoded.value,
        Avro::Record(vec![
            ("track".into(), Avro::String("t-1".into())),
            ("ms".into(), Avro::Long(42)),
        ])
    );
    let by_id = get_schema_by_id(id, &settings).await.unwrap();
    assert!(by_id.schema.contains("track"));
    let latest = get_schema_by_subject(
        &settings,
        &SubjectNameStrategy::TopicNameStrategy("plays".into(), false),
    )
    .await
    .unwrap();
    assert_eq!((latest.id, latest.version), (id, Some(1)));

    // meshline's own client sees the same, and caches it
    let client = meshline::registry::client::Client::new(&url);
    assert!(client.cached_schema(id).is_none());
    client.schema(id).await.unwrap();
    assert!(client.cached_schema(id).is_some());
    assert_eq!(client.latest("plays-value").await.unwrap().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_products_contract_goes_to_the_registry_with_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (registry, url, _stop) = registry(&broker.bootstrap()).await;
    let catalog = common::catalog();
    let product = catalog.get("player.play-events").unwrap();
    let request = meshline::registry::contract::registration(product);
    let subject = product.subject();
    let id = registry
        .write(|s| s.plan_register(&subject, &request))
        .await
        .unwrap();
    let http = Http::new(&url);
    let (_, latest) = http
        .get("/subjects/player.play-events-value/versions/latest")
        .await;
    assert_eq!(latest["id"], id);
    let rules = latest["ruleSet"]["domainRules"].as_array().unwrap();
    assert_eq!(rules.len(), product.descriptor.rules.len());
    assert!(rules
        .iter()
        .all(|r| r["type"] == "CEL" && r["kind"] == "CONDITION"));
    assert_eq!(latest["metadata"]["properties"]["owner"], "player-squad");
    // a plain Confluent client registering the bare schema finds the same id
    assert_eq!(
        http.register("player.play-events-value", &product.schema_text)
            .await
            .unwrap(),
        u64::from(id)
    );
}

/// `meshline registry` `SIGKILL`ed at random points while a client registers schemas (see
/// `common::kill_points`): the client retries each registration until it is acknowledged, and in
/// the end every acknowledged registration is there under its id, and no id names two schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_killed_at_random_points_keeps_every_acknowledged_id() {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    meshline::registry::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    // writes need a token: the platform's, from a tokens file (digests only)
    let token = "platform-kill-test-token";
    let tokens = dir.path().join("tokens.yaml");
    common::write_platform_token(&tokens, token);
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
            .args(["registry", "--bootstrap", &broker.bootstrap()])
            .args(["--registry-listen", &listen])
            .arg("--tokens")
            .arg(&tokens)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    const REGISTRATIONS: usize = 60;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let client = {
        let acknowledged = acknowledged.clone();
        let http = Http::new(&format!("http://{listen}"));
        tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..REGISTRATIONS {
                // 6 subjects, each growing by a field with a default (backward compatible)
                let subject = format!("s{}-value", i % 6);
                let fields: Vec<String> = (0..=i / 6).map(|f| format!("f{f}")).collect();
                let fields: Vec<(&str, &str, Option<Value>)> = fields
                    .iter()
                    .map(|n| (n.as_str(), "string", Some(json!(""))))
                    .collect();
                let schema = record(&fields);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let id = loop {
                    let answer = tokio::time::timeout(
                        std::time::Duration::from_secs(5),
                        http.client
                            .post(format!("{}/subjects/{subject}/versions", http.base))
                            .header("content-type", CT)
                            .bearer_auth(token)
                            .body(json!({ "schema": schema }).to_string())
                            .send(),
                    )
                    .await;
                    if let Ok(Ok(response)) = answer {
                        if response.status() == 200 {
                            let body: Value = response.json().await.unwrap();
                            break body["id"].as_u64().unwrap();
                        }
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "registration {i} never acknowledged"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                };
                done.push((subject, schema, id));
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
            done
        })
    };
    for (at, delay) in common::kill_points(4, 3, REGISTRATIONS as u64 - 5) {
        while acknowledged.load(Ordering::SeqCst) < at as usize {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::time::sleep(delay).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        child = spawn();
    }
    let done = common::within(120, "every registration acknowledged", client)
        .await
        .unwrap();

    // what the registry holds now, for every acknowledged registration, once the instance
    // started by the last kill answers
    let http = Http::new(&format!("http://{listen}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !matches!(
        http.client.get(format!("{}/subjects", http.base)).send().await,
        Ok(r) if r.status() == 200
    ) {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted registry never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut schema_of: BTreeMap<u64, String> = BTreeMap::new();
    for (subject, schema, id) in &done {
        let (status, body) = http
            .post(&format!("/subjects/{subject}"), json!({ "schema": schema }))
            .await;
        assert_eq!(status, 200, "{subject}: {body}");
        assert_eq!(body["id"].as_u64(), Some(*id), "{subject} keeps its id");
        if let Some(other) = schema_of.insert(*id, schema.clone()) {
            assert_eq!(&other, schema, "id {id} names two schemas");
        }
    }
    let versions: usize = snapshot(&http).await.values().map(Vec::len).sum();
    assert_eq!(versions, REGISTRATIONS, "one version per registration");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A registry on another topic than `_schemas` (a cluster where Confluent's registry already
/// keeps its state there) writes only to its own, and reads it back after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_on_its_own_topic_leaves_schemas_alone() {
    use meshline::registry::{service::Settings, Registry};
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let settings = Settings {
        topic: "_meshline_schemas".into(),
        group: "meshline-registry-own".into(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let registry = Registry::start_with(&bootstrap, &settings, stop.clone())
        .await
        .unwrap();
    let request = meshline::registry::api::SchemaRequest {
        schema: Some(record(&[("id", "string", None)])),
        ..Default::default()
    };
    let id = registry
        .write(|s| s.plan_register("own-value", &request))
        .await
        .unwrap();
    stop.cancel();
    registry.stopped().await;
    drop(registry);
    assert!(common::high_watermarks(&bootstrap, "_meshline_schemas") >= 1);
    let consumer: rdkafka::consumer::BaseConsumer = meshline::broker::client_config(&bootstrap)
        .create()
        .unwrap();
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(
        &consumer,
        None,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        !metadata.topics().iter().any(|t| t.name() == "_schemas"),
        "`_schemas` is not touched"
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let again = Registry::start_with(&bootstrap, &settings, stop.clone())
        .await
        .unwrap();
    assert_eq!(
        again
            .state()
            .version_body(
                "own-value",
                meshline::registry::api::VersionId::Latest,
                false
            )
            .unwrap()
            .id,
        Some(id)
    );
    stop.cancel();
    again.stopped().await;
}

/// Attacks on the registry as anyone who can reach it would make them: each gets a clear 4xx,
/// nothing is written outside the registry's topic, and the registry keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_schemas_are_refused_and_the_registry_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (_registry, url, _stop) = registry(&broker.bootstrap()).await;
    let http = Http::new(&url);
    let proto = |body: &str| format!("syntax = \"proto3\";\npackage shop;\n{body}");
    let (status, _) = http
        .post(
            "/subjects/line/versions",
            json!({"schemaType": "PROTOBUF", "schema": proto("message Line { string sku = 1; }")}),
        )
        .await;
    assert_eq!(status, 200);

    // a reference named by a path outside the import root: refused, and no file appears
    let target = dir.path().join("written_by_a_reference.proto");
    for name in [
        target.display().to_string(),
        "../../../../tmp/escaped.proto".to_owned(),
        "file:///tmp/escaped.proto".to_owned(),
        "C:\\escaped.proto".to_owned(),
    ] {
        let importing = proto(&format!(
            "import \"{}\";\nmessage Basket {{ repeated Line lines = 1; }}",
            name.replace('\\', "\\\\")
        ));
        let request = json!({"schemaType": "PROTOBUF", "schema": importing,
            "references": [{"name": name, "subject": "line", "version": 1}]});
        for path in [
            "/compatibility/subjects/basket/versions",
            "/subjects/basket/versions",
            "/subjects/line",
        ] {
            let (status, body) = http.post(path, request.clone()).await;
            assert!(
                (400..500).contains(&status),
                "{path} {name}: {status} {body}"
            );
            assert!(
                body.to_string().contains("is not an import path"),
                "{path} {name}: {body}"
            );
        }
    }
    assert!(!target.exists(), "a reference wrote a file on the host");
    assert!(!std::path::Path::new("/tmp/escaped.proto").exists());

    // nesting far past the limit, in each schema language: refused before any recursion
    let deep_proto = proto(&format!(
        "{}{}",
        "message M { ".repeat(10_000),
        "}".repeat(10_000)
    ));
    let chain: String = (0..1_000)
        .map(|i| format!("message M{i} {{ M{} next = 1; }}\n", i + 1))
        .collect::<String>()
        + "message M1000 { string end = 1; }";
    let deep_avro = format!(
        "{}\"int\"{}",
        "{\"type\":\"array\",\"items\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let deep_json = format!(
        "{}{{\"type\":\"string\"}}{}",
        "{\"type\":\"object\",\"properties\":{\"a\":".repeat(10_000),
        "}}".repeat(10_000)
    );
    for (what, request) in [
        (
            "Protobuf, 10,000 levels",
            json!({"schemaType": "PROTOBUF", "schema": deep_proto}),
        ),
        // the chain is flat text; its field model (what rules read) is 1,000 levels deep
        (
            "Protobuf, a chain of 1,000 message types",
            json!({"schemaType": "PROTOBUF", "schema": proto(&chain),
            "ruleSet": {"domainRules": [{"name": "r", "kind": "CONDITION", "type": "CEL", "mode": "WRITE", "expr": "true"}]}}),
        ),
        ("Avro, 10,000 levels", json!({"schema": deep_avro})),
        (
            "JSON Schema, 10,000 levels",
            json!({"schemaType": "JSON", "schema": deep_json}),
        ),
    ] {
        for path in [
            "/compatibility/subjects/line/versions",
            "/subjects/deep/versions",
        ] {
            let (status, body) = http.post(path, request.clone()).await;
            // a compatibility check may answer (not compatible); a registration is refused
            let refused = (400..500).contains(&status);
            assert!(
                refused || (path.starts_with("/compat") && status == 200),
                "{what} {path}: {status} {body}"
            );
        }
        let (status, _) = http.get("/subjects").await;
        assert_eq!(status, 200, "{what}: the registry stopped answering");
    }

    // huge enums, unions and records: refused before any compatibility check compares them
    // three characters each, so that 100,000 of them fit the 1 MiB body limit
    let alphabet: Vec<char> = ('A'..='Z').chain('a'..='z').chain('0'..='9').collect();
    let symbol = |i: usize| -> String {
        [i % 52, i / 52 % 62, i / 52 / 62 % 62]
            .iter()
            .map(|&d| alphabet[d])
            .collect()
    };
    let symbols: Vec<String> = (0..100_000).map(symbol).collect();
    let huge_enum = json!({"type": "enum", "name": "E", "symbols": symbols}).to_string();
    let branches: Vec<Value> = (0..500)
        .map(|i| json!({"type": "fixed", "name": format!("F{i}"), "size": 1}))
        .collect();
    let huge_union = Value::Array(branches).to_string();
    let values: String = (0..50_000).map(|i| format!("V{i} = {i}; ")).collect();
    let huge_proto_enum = proto(&format!("enum E {{ {values} }}"));
    for (what, request, words) in [
        (
            "an Avro enum of 100,000 symbols",
            json!({"schema": huge_enum}),
            "at most 2000",
        ),
        (
            "an Avro union of 500 branches",
            json!({"schema": huge_union}),
            "at most 100",
        ),
        (
            "a Protobuf enum of 50,000 values",
            json!({"schemaType": "PROTOBUF", "schema": huge_proto_enum}),
            "at most 2000",
        ),
    ] {
        let (status, body) = http.post("/subjects/huge/versions", request.clone()).await;
        assert_eq!(status, 422, "{what}: {body}");
        assert!(body.to_string().contains(words), "{what}: {body}");
        let (status, body) = http
            .post("/compatibility/subjects/line/versions", request.clone())
            .await;
        assert!(
            status == 200 || (400..500).contains(&status),
            "{what}: {status} {body}"
        );
    }

    // bodies too large, not UTF-8, of the wrong type
    // 10 MB: answered 413 once the first MiB is read, and the connection closed (the client
    // may see that before the answer)
    let huge = vec![b' '; 10 << 20];
    let sent = http
        .client
        .post(format!("{}/subjects/x/versions", http.base))
        .header("content-type", CT)
        .body(huge)
        .send()
        .await;
    if let Ok(response) = sent {
        assert_eq!(response.status().as_u16(), 413);
    }
    assert_eq!(http.get("/subjects").await.0, 200);
    let (status, _) = http
        .raw(
            Method::POST,
            "/subjects/x/versions",
            Some(CT),
            b"{\"schema\":\"\xff\xfe\"}".to_vec(),
        )
        .await;
    assert!((400..500).contains(&status), "invalid UTF-8: {status}");
    let (status, _) = http
        .raw(
            Method::POST,
            "/subjects/x/versions",
            Some("text/html"),
            b"<html>".to_vec(),
        )
        .await;
    assert!((400..500).contains(&status), "wrong content type: {status}");

    // a contract may not claim another domain's CloudEvents sources
    let play = record(&[("track", "string", None)]);
    for source in ["/", "/labels", "/players"] {
        let (status, body) = http
            .post(
                "/subjects/player.play-events-value/versions",
                json!({"schema": play, "metadata": {"properties": {
                    "cloudevents.source": source, "cloudevents.types": "t"}}}),
            )
            .await;
        assert_eq!(status, 422, "{source}: {body}");
        assert!(body.to_string().contains("not under `/player`"), "{body}");
    }
    let (status, body) = http
        .post(
            "/subjects/player.play-events-value/versions",
            json!({"schema": play, "metadata": {"properties": {
                "cloudevents.source": "/player/web", "cloudevents.types": "t"}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A client that trickles its headers or its body, or opens more connections than the server
/// takes, holds nothing for long: each is closed or answered within the server's limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trickled_requests_and_too_many_connections_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let router = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let limits = meshline::server::Limits {
        header_read: std::time::Duration::from_secs(1),
        request: std::time::Duration::from_secs(2),
        max_connections: 3,
    };
    meshline::server::spawn_limited(listener, None, router, stop.clone(), limits);
    let read_all = |mut stream: tokio::net::TcpStream| async move {
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(8),
            stream.read_to_end(&mut answer),
        )
        .await
        .expect("the server cut the connection off")
        .ok();
        String::from_utf8_lossy(&answer).into_owned()
    };

    // headers never finished: the connection is closed
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(b"GET /echo HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let answer = read_all(trickle).await;
    assert!(!answer.contains("200 OK"), "{answer}");

    // a connection that sends nothing at all
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    read_all(idle).await;

    // a body that never arrives in full: 408
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = read_all(slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // more connections than the limit: the one past it is answered 503 at once
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let over = tokio::net::TcpStream::connect(addr).await.unwrap();
    let answer = read_all(over).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(held);
    // once they are gone, requests are served again
    let client = reqwest::Client::new();
    let mut served = false;
    for _ in 0..50 {
        if let Ok(response) = client
            .post(format!("http://{addr}/echo"))
            .body("abc")
            .send()
            .await
        {
            served = response.text().await.unwrap() == "3";
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "the server answers again once connections are free");
    stop.cancel();
}

/// A domain's write through an alias lands only in a subject the domain owns: the alias is
/// resolved and the principal checked on the state the write is planned on, so an alias
/// repointed while the body is on its way cannot carry the write into another domain's subject;
/// and a domain cannot point an alias at another domain's subject at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alias_repointed_while_a_write_is_in_flight_never_carries_it_across_domains() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    meshline::registry::client::install_crypto_provider();
    let stop = tokio_util::sync::CancellationToken::new();
    let registry = meshline::registry::Registry::start(&broker.bootstrap(), stop.clone())
        .await
        .unwrap();
    let (tokens, generated) = meshline::auth::Tokens::generate(["player", "platform"]);
    let token = |who: &str| {
        generated
            .iter()
            .find(|(p, _)| p == who)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    let access = meshline::registry::http::Access {
        tokens,
        reads_open: true,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    meshline::server::spawn(
        listener,
        meshline::registry::http::secured_router(registry, access),
        stop.clone(),
    );
    let client = reqwest::Client::new();
    let call = |method: Method, path: &str, who: &str, body: Value| {
        client
            .request(method, format!("http://{addr}{path}"))
            .bearer_auth(token(who))
            .header("content-type", CT)
            .body(body.to_string())
            .send()
    };
    let v1 = record(&[("track", "string", None)]);
    for (subject, who) in [("player.a-value", "player"), ("labels.b-value", "platform")] {
        let response = call(
            Method::POST,
            &format!("/subjects/{subject}/versions"),
            who,
            json!({"schema": v1}),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
    }
    // player may alias its own subjects, never another domain's
    let response = call(
        Method::PUT,
        "/config/player.alias",
        "player",
        json!({"alias": "player.a-value"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let response = call(
        Method::PUT,
        "/config/player.alias",
        "player",
        json!({"alias": "labels.b-value"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403, "{:?}", response.text().await);

    // player starts a write through its alias: headers sent, the body held back
    let v2 = record(&[("track", "string", None), ("ms", "long", Some(json!(0)))]);
    let body = json!({"schema": v2}).to_string();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /subjects/player.alias/versions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: {CT}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            token("player"),
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // meanwhile the alias is repointed at another domain's subject (by the platform, which may)
    let response = call(
        Method::PUT,
        "/config/player.alias",
        "platform",
        json!({"alias": "labels.b-value"}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    slow.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let versions: Value = client
        .get(format!("http://{addr}/subjects/labels.b-value/versions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        versions,
        json!([1]),
        "player's write landed in labels' subject"
    );

    // the audit trail answers who changed what, accepted or refused, as `meshline registry
    // audit` prints it
    let out = common::meshline()
        .args([
            "registry",
            "audit",
            "--bootstrap",
            &broker.bootstrap(),
            "--subject",
            "player.alias",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trail: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(5)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        trail,
        [
            "player PUT /config/player.alias 200 accepted",
            "player PUT /config/player.alias 403 refused",
            "platform PUT /config/player.alias 200 accepted",
            "player POST /subjects/player.alias/versions 403 refused",
        ]
    );
    let all = meshline::registry::audit::read(&broker.bootstrap(), "_schemas", None).unwrap();
    let registered = all
        .iter()
        .find(|e| e.subject.as_deref() == Some("labels.b-value"))
        .unwrap();
    assert_eq!(
        (
            registered.principal.as_deref(),
            registered.version,
            registered.outcome.as_str()
        ),
        (Some("platform"), Some(1), "accepted")
    );
    stop.cancel();
}
