#!/usr/bin/env bash
# Fuzz ringway's HTTP/1.1 codec, PROXY protocol parser and OpenAPI importer for a bounded time per target.
#   engine/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# Needs cargo-fuzz (installed from crates.io if missing). The machine has
# only the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# sanitizer flags to it. Crashes land in engine/fuzz/artifacts/<target>/;
# after fixing one, copy it to engine/fuzz/regressions/<target>/ so the
# normal test run (engine/tests/fuzz_corpus.rs) replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request_head chunked response_head proxy_header openapi)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
status=0
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs}s"
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10; then
    echo "!! $t found a crash: see engine/fuzz/artifacts/$t/"
    status=1
  fi
done
exit $status
