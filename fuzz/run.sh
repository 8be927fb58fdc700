#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target for a bounded time each (default 30 s; `fuzz/run.sh 600` for a longer run)
# when a nightly toolchain is on the machine (cargo-fuzz is installed if missing); otherwise says so and
# succeeds: the committed corpora are still replayed on stable by `cargo test` (tests/it/fuzz_corpus.rs).
# A crash fails the run and leaves its input under fuzz/artifacts/<target>/: once fixed, copy it into
# fuzz/corpus/<target>/ so the replay keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain on this machine; fuzzing skipped (corpora are replayed by cargo test)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
target_dir="${YUNID_FUZZ_TARGET_DIR:-}"
if [ -z "$target_dir" ]; then
  if mkdir -p /var/cache/yunid-fuzz-target 2>/dev/null && [ -w /var/cache/yunid-fuzz-target ]; then
    target_dir=/var/cache/yunid-fuzz-target
  else
    target_dir=fuzz/target
  fi
fi

cargo +nightly fuzz build --target-dir "$target_dir"
for target in $(cargo +nightly fuzz list); do
  # New inputs go to a scratch folder; the committed seeds stay as they are.
  mkdir -p "fuzz/work/$target"
  echo "== fuzz $target (${seconds}s)"
  # Only libFuzzer's summary and any crash report are shown; the status is the fuzzer's.
  set +e
  cargo +nightly fuzz run --target-dir "$target_dir" "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 2>&1 |
    grep -E "^(#[0-9]+ +DONE|stat::|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written|thread .* panicked)"
  status=${PIPESTATUS[0]}
  set -e
  [ "$status" -eq 0 ] || { echo "fuzz: $target failed (exit $status; input under fuzz/artifacts/$target/)"; exit 1; }
done
