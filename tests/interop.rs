//! Confluent's own Python client against `meshline up`, as a Python team uses them: the
//! suite in `tests/interop/` (pytest) runs every `SchemaRegistryClient` method, produces with
//! `AvroSerializer` and reads with `AvroDeserializer` through the gateway, all with the client's
//! default settings. The clients are installed by `tests/interop/venv.sh` into a virtual
//! environment outside the clone; a machine without Python fails here, it does not skip.

mod common;

use std::path::Path;

use common::*;

#[test]
fn confluents_python_client_with_default_settings_works_against_meshline_up() {
    let python = interop_python();
    let data = tempfile::tempdir().unwrap();
    let at = UpAt::new();
    let (kafka, registry, http) = (&at.kafka, &at.registry, &at.http);
    let mut up = at.command(&repo_config(), data.path()).spawn().unwrap();
    let _guard = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    let banner = wait_for(&lines, "Stop with Ctrl-C", 120);
    let tokens = tokens_of(&banner);
    assert!(
        tokens.contains_key("platform") && tokens.contains_key("player"),
        "{banner:#?}"
    );

    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    let run = std::process::Command::new(&python)
        .args(["-m", "pytest", "-v"])
        .arg(&suite)
        .env("MESHLINE_BOOTSTRAP", kafka)
        .env("MESHLINE_REGISTRY_URL", format!("http://{registry}"))
        .env("MESHLINE_INGRESS_URL", format!("http://{http}"))
        .env(
            "MESHLINE_TOKENS_JSON",
            serde_json::Value::Object(tokens).to_string(),
        )
        .env("MESHLINE_REPO", env!("CARGO_MANIFEST_DIR"))
        // nothing written into the clone
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&suite)
        .output()
        .expect("pytest runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{report}");
    assert!(run.status.success(), "the interop suite failed:\n{report}");
    assert!(
        !report.contains("skipped") && report.contains(" passed"),
        "every test of the suite runs:\n{report}"
    );

    interrupt(&up);
    assert!(wait_exit(&mut up, 60).success());
}
