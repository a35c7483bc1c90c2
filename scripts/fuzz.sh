#!/usr/bin/env bash
# Runs each coverage-guided fuzz target (libFuzzer through `cargo fuzz`) for a bounded time,
# from its committed corpus (fuzz/corpus/<target>/, seeds only: what a run finds stays outside
# the clone). Usage: bash scripts/fuzz.sh [SECONDS per target, default 30] [TARGET...]
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
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  # the run's corpus grows in a scratch copy; the committed seeds stay as they are
  mkdir -p "$work/$target"
  cp fuzz/corpus/"$target"/* "$work/$target/"
  echo "== fuzzing $target for ${seconds}s"
  if ! cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --target-dir "$target_dir" \
      --sanitizer none "$target" "$work/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=131072 \
      -artifact_prefix="$work/" 2>"$work/$target.log"; then
    tail -n 40 "$work/$target.log" >&2
    failed+=("$target")
  else
    grep -E '^(#[0-9]+: *DONE|Done [0-9]+ runs)' "$work/$target.log" | tail -n 1 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found a crash in: ${failed[*]} (the input is in the log above)" >&2
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets ran ${seconds}s each without a crash"
