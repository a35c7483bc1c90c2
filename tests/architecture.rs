//! The architecture, checked: what each crate may depend on, and no circle between the
//! top-level modules of any crate.
//!
//! - `meshline-core` is pure: no Kafka client, runtime, HTTP server or client, object store.
//! - `meshline-sdk` is light: core, rdkafka and a registry client; none of the platform's
//!   broker, columnar, object-store or server crates, and at most [`SDK_CRATES`] crates in all.
//! - In the platform, the gateway and the snapshotter never import each other, and neither uses
//!   the SDK's producer or consumer (what they share lives in `outputs`, `broker`, `telemetry`
//!   and the core).
//! - The modules of each crate form no circle (`a` uses `b` uses … uses `a`).
//!
//! Module dependencies are read from the sources: every `crate::<module>` path outside comments
//! and test modules.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

/// The most crates `cargo tree -p meshline-sdk` may list.
const SDK_CRATES: usize = 200;

/// Crates a package must not depend on, directly or not.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "meshline-core",
        &[
            "rdkafka",
            "tokio",
            "axum",
            "hyper",
            "reqwest",
            "object_store",
            "tansu-broker",
            "arrow-array",
            "parquet",
        ],
    ),
    (
        "meshline-sdk",
        &[
            "meshline",
            "tansu-broker",
            "tansu-storage",
            "arrow-array",
            "parquet",
            "object_store",
            "axum",
            "prometheus",
        ],
    ),
];

/// Platform modules that must not use each other: (from, to).
const FORBIDDEN_EDGES: &[(&str, &str)] = &[("gateway", "snapshot"), ("snapshot", "gateway")];

/// Platform modules that must not use the SDK's producer or consumer.
const NOT_SDK_USERS: &[&str] = &["gateway", "snapshot", "outputs", "registry", "broker"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The crates `cargo tree -p package` lists (name and version, each once).
fn tree(package: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "-p",
            package,
            "--prefix",
            "none",
            "--offline",
            "--locked",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect()
}

#[test]
fn each_crate_depends_only_on_what_its_layer_allows() {
    for (package, forbidden) in FORBIDDEN {
        let crates = tree(package);
        assert!(
            crates.iter().any(|c| c.starts_with(&format!("{package} "))),
            "{package} is in its own tree"
        );
        let found: Vec<&String> = crates
            .iter()
            .filter(|c| forbidden.iter().any(|f| c.split(' ').next() == Some(f)))
            .collect();
        assert!(
            found.is_empty(),
            "{package} depends on {found:?}; see `cargo tree -p {package} -i NAME`"
        );
    }
    let sdk = tree("meshline-sdk").len();
    assert!(
        sdk <= SDK_CRATES,
        "`cargo tree -p meshline-sdk` lists {sdk} crates, more than {SDK_CRATES}"
    );
}

/// Source without comments, and without test modules (from `#[cfg(test)]` on).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments a `use`/path group names: `a::b, c::{d}, e` → a, c, e.
fn heads(group: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = true;
    let mut word = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if depth == 0 && start && (c.is_alphanumeric() || c == '_') => word.push(c),
            _ if depth == 0 && start && !word.is_empty() => {
                out.push(std::mem::take(&mut word));
                start = false;
            }
            _ => {}
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// What `prefix::` paths in `text` name first: `prefix::a::x`, `prefix::{a, b::c}` → a, b.
fn used(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let needle = format!("{prefix}::");
    let mut rest = text;
    while let Some(i) = rest.find(&needle) {
        let before = rest[..i].chars().last();
        rest = &rest[i + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(inner) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = inner
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(inner.len(), |(i, _)| i);
            out.extend(heads(&inner[..end]));
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                out.insert(word);
            }
        }
    }
    out
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module a source file belongs to (`src/gateway/http.rs` → `gateway`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Module → modules it uses, and module → text of its files.
fn graph(src: &Path) -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for file in sources(src) {
        let module = module_of(src, &file);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = code(&file);
        let to = edges.entry(module.clone()).or_default();
        to.extend(used(&text, "crate").into_iter().filter(|m| *m != module));
        texts.entry(module).or_default().push_str(&text);
    }
    (edges, texts)
}

/// A circle in `edges`, if any, as the path around it.
fn circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut found = path[i..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_every_crate_form_no_circle() {
    for src in ["src", "crates/meshline-core/src", "crates/meshline-sdk/src"] {
        let (edges, _) = graph(&root().join(src));
        assert!(edges.len() > 3, "{src}: modules found: {edges:?}");
        if let Some(found) = circle(&edges) {
            panic!("{src}: the modules form a circle: {}", found.join(" → "));
        }
    }
}

#[test]
fn gateway_snapshotter_and_sdk_never_import_each_other() {
    let (edges, texts) = graph(&root().join("src"));
    for (from, to) in FORBIDDEN_EDGES {
        assert!(edges.contains_key(*from), "module {from} exists");
        assert!(
            !edges[*from].contains(*to),
            "{from} uses {to}; move what they share to a module both use"
        );
    }
    for module in NOT_SDK_USERS {
        let text = &texts[*module];
        let sdk: BTreeSet<String> = used(text, "meshline_sdk")
            .into_iter()
            .chain(used(text, "crate::sdk"))
            .collect();
        let components = ["producer", "consumer", "Producer", "Consumer"];
        let bad: Vec<&String> = sdk
            .iter()
            .filter(|s| components.contains(&s.as_str()))
            .collect();
        assert!(bad.is_empty(), "{module} uses the SDK's {bad:?}");
    }
}

#[test]
fn the_reader_finds_what_it_must() {
    let text = "use crate::{a::b, c::{d, e}, f};\nlet x = crate::g::h();\nfoo_crate::z;";
    assert_eq!(
        used(text, "crate"),
        ["a", "c", "f", "g"].map(String::from).into()
    );
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    assert_eq!(circle(&edges), None);
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        circle(&edges),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}
