#!/usr/bin/env bash
# Fuzzes each target in fuzz/ with libFuzzer (cargo fuzz, stable Rust, no
# sanitizer), starting from the committed corpus.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 15 s each, every target
# New inputs go to target/fuzz-corpus/<target> (merge the interesting ones
# into fuzz/corpus/<target> with `cargo fuzz cmin`); a crash is written to
# fuzz/artifacts/<target>/ and fails the run: copy it into
# fuzz/regressions/<target>/ once fixed, so `cargo test` replays it forever.
# One summary line per target: runs, coverage (cov), corpus size (corp).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(signed_messages ipc_frame enroll_uri relay_request config_toml recovery_code state_file sealed_messages offline_request)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi
# The libFuzzer binaries are built behind the `libfuzzer` feature so that
# the workspace's normal builds never link libFuzzer.
run=(cargo fuzz run --sanitizer none --features libfuzzer)
cargo fuzz build --sanitizer none --features libfuzzer >/dev/null
failed=0
for t in "${targets[@]}"; do
  work=target/fuzz-corpus/$t
  mkdir -p "$work" "fuzz/artifacts/$t"
  log=$(mktemp)
  if "${run[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
    grep -v '^#' "$log" | tail -40 >&2
  fi
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz $t: $status, ${runs:-?} runs in ${secs}s; ${last#* }"
  rm -f "$log"
done
exit "$failed"
