//! The `meshline` binary run as a user runs it: started, read, interrupted, killed.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command},
    sync::mpsc,
    time::Duration,
};

/// The `meshline` binary, with none of the environment that would change what it reads.
pub(crate) fn meshline() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_meshline"));
    c.env_remove("RUST_LOG")
        .env_remove("MESHLINE_CONFIG")
        .env_remove("MESHLINE_BOOTSTRAP")
        .env_remove("MESHLINE_DATA_DIR")
        .env_remove("MESHLINE_REGISTRY")
        .env_remove("MESHLINE_URL");
    // to see what a test's meshline logs: MESHLINE_TEST_LOG=info,tansu_broker=debug cargo test …
    if let Ok(filter) = std::env::var("MESHLINE_TEST_LOG") {
        c.env("RUST_LOG", filter);
    }
    c
}

/// The addresses of a `meshline up` a test runs: the Kafka API, the registry, the HTTP server.
pub(crate) struct UpAt {
    pub(crate) kafka: String,
    pub(crate) registry: String,
    pub(crate) http: String,
}

impl UpAt {
    /// Free loopback ports.
    pub(crate) fn new() -> Self {
        Self {
            kafka: free_port(),
            registry: free_port(),
            http: free_port(),
        }
    }

    /// `meshline up` on these addresses, with the descriptors in `config` and its data in
    /// `data`, stdout piped; add arguments before spawning it.
    pub(crate) fn command(&self, config: &std::path::Path, data: &std::path::Path) -> Command {
        let mut c = meshline();
        c.args(["up", "--listen", &self.kafka])
            .args([
                "--registry-listen",
                &self.registry,
                "--http-listen",
                &self.http,
            ])
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .stdout(std::process::Stdio::piped());
        c
    }
}

/// Lines printed on stdout by a child, read on a thread.
pub(crate) fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits until a line containing `needle` is printed; answers every line up to it.
pub(crate) fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, secs: u64) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("`{needle}` not printed within {secs}s; got: {seen:#?}");
}

/// A free loopback address.
pub(crate) fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Ctrl-C.
pub(crate) fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for a child to exit; kills it and fails after `secs`.
pub(crate) fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {secs}s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the process when a failing test unwinds, so no server outlives it.
pub(crate) struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
}

/// The tokens `meshline up` generated, by principal: read from the file its banner names
/// (outside `--demo`, where tokens are never printed), else from the lines after the tokens'
/// heading (`--demo`).
pub(crate) fn tokens_of(banner: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let heading = "tokens for the HTTP ingress and schema registry writes";
    let pair = |l: &str| {
        let mut words = l.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(principal), Some(token), None) if token.starts_with("mlt_") => {
                Some((principal.to_owned(), serde_json::Value::from(token)))
            }
            _ => None,
        }
    };
    let written = banner
        .iter()
        .find(|l| l.contains(heading))
        .and_then(|l| l.split_once("written to "))
        .and_then(|(_, rest)| rest.split_once(" (readable by its owner only"))
        .map(|(path, _)| path.to_owned());
    if let Some(path) = written {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{path} is readable by others: {mode:o}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !banner.iter().any(|l| l.contains("mlt_")),
            "a token printed on stdout: {banner:#?}"
        );
        return text.lines().filter_map(pair).collect();
    }
    banner
        .iter()
        .skip_while(|l| !l.contains(heading))
        .skip(1)
        .map_while(|l| pair(l))
        .collect()
}

/// Runs `bash scripts/<script> <args>` from the repository and answers the last line it printed
/// (what the project's scripts print for a test to use: a classpath, bootstrap servers); fails
/// with what it printed on its standard error otherwise.
pub(crate) fn script(script: &str, args: &[&str]) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("bash runs scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
