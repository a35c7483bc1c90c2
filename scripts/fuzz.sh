#!/usr/bin/env bash
# Runs each coverage-guided fuzz target (libFuzzer through `cargo fuzz`) for a bounded time,
# from its committed seeds (fuzz/corpus/<target>/, and the products' schemas; what a run finds
# stays outside the clone). Usage: bash scripts/fuzz.sh [SECONDS per target, default 30] [TARGET...]
# With MESHLINE_FUZZ_RUNS=N each target runs N inputs from a fixed seed instead: the same inputs
# on every run (what scripts/test.sh does, so that a test run is repeatable). A crash's input is
# kept in ~/.cache/meshline-fuzz-crashes and printed in base64.
#
# cargo fuzz needs a nightly toolchain's flags: the machine's nightly when rustup has one,
# else the stable toolchain with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(schemas protobuf registry_bodies records)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked --quiet \
    || { echo "cannot install cargo-fuzz from the Rust package registry" >&2; exit 1; }
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi

target_dir="${MESHLINE_FUZZ_TARGET_DIR:-$HOME/.cache/meshline-fuzz-target}"
if [ -n "${MESHLINE_FUZZ_RUNS:-}" ]; then
  budget="$MESHLINE_FUZZ_RUNS inputs from seed 1"
else
  budget="${seconds}s"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  # the run's corpus grows in a scratch copy; the committed seeds stay as they are
  mkdir -p "$work/$target"
  cp fuzz/corpus/"$target"/* "$work/$target/"
  # the products' own .proto files seed the Protobuf target too
  [ "$target" != protobuf ] || cp schemas/*/*.proto "$work/$target/"
  echo "== fuzzing $target: $budget"
  if [ -n "${MESHLINE_FUZZ_RUNS:-}" ]; then
    bound=(-runs="$MESHLINE_FUZZ_RUNS" -seed=1)
  else
    bound=(-max_total_time="$seconds")
  fi
  if ! cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --target-dir "$target_dir" \
      --sanitizer none "$target" "$work/$target" -- \
      "${bound[@]}" -rss_limit_mb=2048 -max_len=131072 \
      -artifact_prefix="$work/" 2>"$work/$target.log"; then
    grep -E "panicked at|^called|ERROR: libFuzzer" -A2 "$work/$target.log" >&2 || tail -n 40 "$work/$target.log" >&2
    mkdir -p "$HOME/.cache/meshline-fuzz-crashes"
    for crash in "$work"/crash-* "$work"/oom-* "$work"/timeout-*; do
      [ -f "$crash" ] || continue
      cp "$crash" "$HOME/.cache/meshline-fuzz-crashes/$target-$(basename "$crash")"
      echo "the input ($target, base64): $(base64 -w0 "$crash")" >&2
      rm -f "$crash"
    done
    failed+=("$target")
  else
    grep -E '^(#[0-9]+: *DONE|Done [0-9]+ runs)' "$work/$target.log" | tail -n 1 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found a crash in: ${failed[*]} (the input is in the log above)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, $budget each, no crash"
