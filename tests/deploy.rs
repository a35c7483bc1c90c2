//! The image and the Kubernetes example without Docker or a cluster: the Dockerfile builds the
//! configuration CI builds and runs unprivileged with a health check, and every manifest parses,
//! runs a command meshline's CLI accepts, and probes the servers' `/readyz` and `/healthz`.

use std::path::Path;

use clap::Parser as _;
use meshline::cli::Cli;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_image_is_the_tested_build_unprivileged_with_a_health_check() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        dockerfile.contains("cargo build --release --locked --no-default-features --bin meshline")
    );
    assert!(
        ci.contains("cargo build --no-default-features --locked --bin meshline"),
        "CI builds what the image builds"
    );
    for from in dockerfile.lines().filter(|l| l.starts_with("FROM ")) {
        let image = from.split_whitespace().nth(1).unwrap();
        let tag = image.split(':').nth(1).unwrap_or("");
        assert!(
            tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{image} is pinned to a version"
        );
    }
    assert!(
        dockerfile.contains("\nUSER 10001"),
        "runs as a non-root user"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for excluded in ["target/", ".meshline/", ".git/"] {
        assert!(ignore.lines().any(|l| l == excluded), "{excluded}");
    }
}

#[test]
fn every_kubernetes_manifest_parses_runs_a_valid_command_and_probes_readiness() {
    let text = std::fs::read_to_string(root().join("deploy/kubernetes/meshline.yaml")).unwrap();
    let mut workloads = Vec::new();
    let mut policies = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let doc: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        let kind = doc["kind"].as_str().unwrap().to_owned();
        assert!(doc["apiVersion"].is_string() && doc["metadata"]["name"].is_string());
        if kind == "NetworkPolicy" {
            policies.push(
                doc["spec"]["podSelector"]["matchLabels"]["app"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        if !matches!(kind.as_str(), "Deployment" | "StatefulSet") {
            continue;
        }
        let spec = &doc["spec"]["template"]["spec"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{kind}");
        assert_eq!(
            spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{kind}"
        );
        for container in spec["containers"].as_array().unwrap() {
            let context = &container["securityContext"];
            assert_eq!(context["allowPrivilegeEscalation"], false, "{kind}");
            assert_eq!(context["readOnlyRootFilesystem"], true, "{kind}");
            assert_eq!(context["capabilities"]["drop"], serde_json::json!(["ALL"]));
            for limit in ["cpu", "memory"] {
                assert!(
                    container["resources"]["limits"][limit].is_string(),
                    "{kind}: {limit}"
                );
            }
            let args: Vec<String> = container["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    a.as_str()
                        .unwrap()
                        .replace("$(KAFKA_BOOTSTRAP)", "kafka:9092")
                })
                .collect();
            let parsed =
                Cli::try_parse_from(std::iter::once("meshline".to_owned()).chain(args.clone()));
            assert!(
                parsed.is_ok(),
                "`meshline {}`: {:?}",
                args.join(" "),
                parsed.err()
            );
            assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
            assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
            workloads.push((
                kind.clone(),
                args[0].clone(),
                doc["spec"]["replicas"].clone(),
                args.clone(),
            ));
        }
    }
    // tokens never cross the network in clear: the registry and the gateway speak HTTPS, and
    // their clients reach the registry over it
    for command in ["registry", "gateway"] {
        let args = &workloads.iter().find(|w| w.1 == command).unwrap().3;
        assert!(
            args.iter().any(|a| a.starts_with("--tls-cert=")),
            "{command}"
        );
    }
    assert!(!text.contains("--registry-url=http://"));
    // a NetworkPolicy for each component
    for app in [
        "meshline-registry",
        "meshline-gateway",
        "meshline-snapshotter",
    ] {
        assert!(
            policies.iter().any(|p| p == app),
            "no NetworkPolicy selects {app}"
        );
    }
    let find = |command: &str| workloads.iter().find(|w| w.1 == command).unwrap().clone();
    // each gateway pod keeps its own transactional id: a StatefulSet, the id from the pod name
    assert_eq!(find("gateway").0, "StatefulSet");
    assert!(text.contains("--transactional-id=$(POD_NAME)"));
    // snapshotter replicas elect one worker per product; a second stands by
    assert_eq!(find("snapshotter").2, 2);
    assert_eq!(find("registry").0, "Deployment");
}
