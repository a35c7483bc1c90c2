//! `docker-compose.yml` without a Docker engine: it parses, every file it mounts exists, every
//! meshline command in it is one the binary accepts, and its broker ACLs match the descriptors.

use std::path::Path;

use clap::Parser as _;
use meshline::cli::Cli;

fn compose() -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML")
}

#[test]
fn every_mounted_file_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let mut mounts = 0;
    for (name, service) in services {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let host = volume.as_str().unwrap().split(':').next().unwrap();
            if host.starts_with('.') {
                assert!(
                    root.join(host).exists(),
                    "{name} mounts {host}, which is missing"
                );
                mounts += 1;
            }
        }
        if service.get("build").is_some() {
            assert!(
                root.join("Dockerfile").is_file(),
                "{name} builds from a missing Dockerfile"
            );
        }
    }
    assert!(mounts > 0);
}

#[test]
fn every_meshline_command_parses() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let mut commands = 0;
    for (name, service) in services {
        if service.get("build").is_none() {
            continue;
        }
        let args: Vec<&str> = service["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let parsed = Cli::try_parse_from(std::iter::once("meshline").chain(args.iter().copied()));
        assert!(
            parsed.is_ok(),
            "{name}: `meshline {}`: {:?}",
            args.join(" "),
            parsed.err()
        );
        commands += 1;
    }
    assert_eq!(
        commands, 5,
        "meshline, registry-2, gateway-2, snapshotter-2 and demo"
    );
}

#[test]
fn the_broker_acls_are_the_ones_the_descriptors_imply() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("deploy/kafka-acls.sh")).unwrap();
    let catalog = meshline::formats::load_catalog(&root.join("config")).unwrap();
    assert_eq!(
        committed,
        meshline::product::acls::kafka_acls_script(&catalog),
        "deploy/kafka-acls.sh is stale: run `meshline contract acls > deploy/kafka-acls.sh`"
    );
}

#[test]
fn the_stack_has_kafka_meshline_prometheus_and_grafana_with_the_generated_files() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let image = |name: &str| {
        services[name]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(image("kafka").starts_with("apache/kafka:"));
    assert!(image("prometheus").starts_with("prom/prometheus:"));
    assert!(image("grafana").starts_with("grafana/grafana:"));
    let mounts = |name: &str| -> Vec<String> {
        services[name]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    // Prometheus loads the generated rules next to its config; Grafana the generated dashboards
    assert!(mounts("prometheus").contains(&"./deploy/prometheus:/etc/prometheus:ro".to_owned()));
    assert!(mounts("grafana")
        .contains(&"./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro".to_owned()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(config.contains("rules/*.yaml"));
    for target in [
        "meshline:8080",
        "meshline:8081",
        "gateway-2:8080",
        "snapshotter-2:8080",
    ] {
        assert!(config.contains(target), "Prometheus scrapes {target}");
    }
    // two gateways, a demo producer, two snapshotter workers writing to MinIO
    assert_eq!(services["gateway-2"]["command"][0], "gateway");
    assert_eq!(services["snapshotter-2"]["command"][0], "snapshotter");
    assert!(services["snapshotter-2"]["command"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("--snapshots=s3://snapshots")));
    assert_eq!(services["demo"]["command"][0], "demo");
    let up: Vec<&str> = services["meshline"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(up.contains(&"--snapshots=s3://snapshots"));
}
