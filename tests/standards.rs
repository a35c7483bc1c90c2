//! Each demo product's contract in the standards other tools read, through the `meshline`
//! binary as a user runs it: ODCS v3.1 (checked against the standard's JSON Schema, and round
//! tripped export → import → export) and AsyncAPI 3.0 (checked against its JSON Schema, the Avro
//! payload included); an ODCS contract written by another tool imports into a descriptor that
//! lints.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

mod common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn meshline(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshline"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ids() -> Vec<String> {
    let catalog = meshline::formats::load_catalog(&root().join("config")).unwrap();
    catalog.iter().map(|p| p.id().to_owned()).collect()
}

/// Exports `product` in `format` into `dir`; returns the file.
fn export(dir: &Path, product: &str, format: &str, config: &Path) -> PathBuf {
    let (ok, out, err) = meshline(&[
        "contract",
        "export",
        product,
        "--format",
        format,
        "--config",
        config.to_str().unwrap(),
        "--bootstrap",
        "kafka.example:9092",
    ]);
    assert!(ok, "{err}");
    let file = dir.join(format!("{product}.{format}.yaml"));
    std::fs::write(&file, out).unwrap();
    file
}

#[test]
fn every_product_exports_a_valid_odcs_contract_that_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let config = root().join("config");
    let imported = dir.path().join("imported");
    let mut files = Vec::new();
    for id in ids() {
        let first = export(dir.path(), &id, "odcs", &config);
        let doc: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
        assert_eq!(doc["apiVersion"], "v3.1.0");
        assert_eq!(doc["servers"][0]["host"], "kafka.example:9092");
        assert!(
            doc["schema"][0]["properties"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{doc}"
        );
        files.push(first.clone());

        // import every product into one directory (a derived product's inputs are there too)
        let (ok, out, err) = meshline(&[
            "contract",
            "import",
            first.to_str().unwrap(),
            "--out",
            imported.to_str().unwrap(),
        ]);
        assert!(ok, "{out}{err}");
    }
    // the imported descriptors lint; exported again, each is the same document
    let (ok, out, err) = meshline(&["contract", "lint", imported.to_str().unwrap()]);
    assert!(ok && out.contains("no errors"), "{out}{err}");
    for (id, first) in ids().iter().zip(&files) {
        let again_dir = dir.path().join(format!("again-{id}"));
        std::fs::create_dir_all(&again_dir).unwrap();
        let again = export(&again_dir, id, "odcs", &imported);
        assert_eq!(
            std::fs::read_to_string(first).unwrap(),
            std::fs::read_to_string(&again).unwrap(),
            "{id}: export → import → export changed the contract"
        );
    }
    common::assert_valid(
        &common::fixture("odcs/odcs-json-schema-v3.1.0.json"),
        &files,
    );
}

#[test]
fn every_product_exports_a_valid_asyncapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for id in ids() {
        let file = export(dir.path(), &id, "asyncapi", &root().join("config"));
        let doc: serde_json::Value =
            serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let topics = meshline::product::Topics::of(&id);
        assert_eq!(
            doc["channels"]["product"]["address"],
            topics.product.as_str()
        );
        assert_eq!(
            doc["channels"]["ingress"]["address"],
            topics.ingress.as_str()
        );
        assert_eq!(
            doc["channels"]["deadLetters"]["address"],
            topics.dlq.as_str()
        );
        files.push(file);
    }
    common::assert_valid(&common::fixture("asyncapi/3.0.0.json"), &files);
}

#[test]
fn a_contract_written_by_another_tool_imports_into_a_product_that_lints() {
    let dir = tempfile::tempdir().unwrap();
    let contract = dir.path().join("signings.odcs.yaml");
    std::fs::write(
        &contract,
        "apiVersion: v3.1.0
kind: DataContract
id: 53581432-6c55-4ba2-a65f-72344a91553a
name: label signings
version: 2.0.0
status: active
domain: labels
description:
  purpose: Contracts signed between labels and artists.
team:
  name: label-relations
  members:
    - username: label-relations@example.com
      role: owner
schema:
  - name: label_signing
    properties:
      - {name: label_id, logicalType: string, required: true}
      - {name: artist_id, logicalType: string, required: true}
      - {name: advance, logicalType: number}
      - {name: signed_at, logicalType: timestamp, required: true}
      - {name: territories, logicalType: array, items: {logicalType: string}, required: true}
    quality:
      - {name: has_label, type: custom, engine: cel, implementation: \"size(message.label_id) > 0\"}
      - {name: rows, type: library, metric: rowCount, mustBeGreaterThan: 0}
slaProperties:
  - {property: retention, value: 30, unit: d}
",
    )
    .unwrap();
    common::assert_valid(
        &common::fixture("odcs/odcs-json-schema-v3.1.0.json"),
        std::slice::from_ref(&contract),
    );
    let out_dir = dir.path().join("config");
    let (ok, out, err) = meshline(&[
        "contract",
        "import",
        contract.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    // what the import chose or left out is said
    for note in [
        "product id `labels.label-signings`",
        "derived from the schema object's properties",
        "quality check rows left out",
        "cloudevents",
    ] {
        assert!(out.contains(note), "{note} not in {out}");
    }
    let product = meshline::product::load_product(&out_dir.join("label-signings.yaml")).unwrap();
    let d = &product.descriptor;
    assert_eq!(d.owner.email, "label-relations@example.com");
    assert_eq!(d.rules.len(), 1);
    assert_eq!(d.retention.as_retention_ms(), 30 * 86_400_000);
    let schema: serde_json::Value = serde_json::from_str(&product.schema_text).unwrap();
    assert_eq!(schema["name"], "LabelSigning");
    assert_eq!(
        schema["fields"][2]["type"],
        serde_json::json!(["null", "double"])
    );

    // a contract without a domain says what to add
    std::fs::write(
        &contract,
        "apiVersion: v3.1.0\nkind: DataContract\nid: x\nversion: 1.0.0\nstatus: draft\n",
    )
    .unwrap();
    let (ok, _, err) = meshline(&[
        "contract",
        "import",
        contract.to_str().unwrap(),
        "--out",
        dir.path().join("other").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("field `domain`"), "{err}");
}
