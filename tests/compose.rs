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
    assert_eq!(commands, 3, "meshline, registry-2 and gateway-2");
}

#[test]
fn the_broker_acls_are_the_ones_the_descriptors_imply() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("deploy/kafka-acls.sh")).unwrap();
    let catalog = meshline::product::Catalog::load(&root.join("config")).unwrap();
    assert_eq!(
        committed,
        meshline::product::acls::kafka_acls_script(&catalog),
        "deploy/kafka-acls.sh is stale: run `meshline contract acls > deploy/kafka-acls.sh`"
    );
}
