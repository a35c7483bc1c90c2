#!/usr/bin/env bash
# Runs every test of meshline: installs what the tests need and is missing, then
# `cargo test --locked --no-fail-fast` (extra arguments go to it, e.g.
# `bash scripts/test.sh --test gateway`) and, for the whole run, the fuzz targets
# (`scripts/fuzz.sh`).
#
# The tests need, besides the Rust toolchain and gcc:
# - promtool, to validate and unit-test the generated Prometheus rules (Debian's `prometheus`
#   package ships it);
# - Python 3 with venv, for the clients users run (Confluent's, cloudevents, an OpenAPI validator), installed
#   into a virtual environment outside the clone (tests/interop/venv.sh);
# - Java 17 and Maven, for the Apache Kafka Java client (tests/java, scripts/java-client.sh);
# - cargo-fuzz, for the fuzz targets (scripts/fuzz.sh installs it);
# - root or passwordless sudo, for the test that fills a small tmpfs to run out of disk.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meshline-target}"

sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"

if ! command -v promtool >/dev/null 2>&1; then
  echo "== installing promtool (Debian's prometheus package)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
    || { echo "cannot install promtool: apt-get install prometheus failed" >&2; exit 1; }
fi

# the Apache Kafka Java client's tests: Java 17 and Maven (the jars come through Maven, cached
# outside the clone by scripts/java-client.sh)
if ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  echo "== installing Java 17 and Maven (Debian's openjdk-17-jdk-headless and maven packages)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_ apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null \
    || { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven >/dev/null; } \
    || { echo "cannot install Java 17 and Maven: apt-get install openjdk-17-jdk-headless maven failed" >&2; exit 1; }
fi

# the Python clients users run, in a virtual environment outside the clone
bash tests/interop/venv.sh >/dev/null

# every suite runs to its end; with no arguments (the whole run) the fuzz targets run too, each
# on the same 1,000,000 inputs from a fixed seed (MESHLINE_FUZZ_RUNS)
status=0
cargo test --locked --no-fail-fast "$@" || status=$?
# the Apache Kafka cluster tests/kafka.rs started, if it did
bash scripts/kafka.sh stop >/dev/null 2>&1 || true
if [ $# -eq 0 ]; then
  MESHLINE_FUZZ_RUNS="${MESHLINE_FUZZ_RUNS:-1000000}" bash scripts/fuzz.sh || status=1
fi
exit "$status"
