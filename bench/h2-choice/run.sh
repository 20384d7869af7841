#!/usr/bin/env bash
# Builds the h2-choice servers (and, with RINGWAY=1, the ringway binary at
# the worktree root) and measures them with h2load: ROUNDS rounds (default
# 5) of each workload, every round running each server once in a rotated
# order. Each round holds /tmp/bench.lock (flock) only while it measures;
# nothing is compiled under the lock. Results: $OUT (JSON lines) and a
# Markdown summary on stdout.
#
#   bench/h2-choice/run.sh                      # monoio-http, own, own-raw
#   RINGWAY=1 bench/h2-choice/run.sh            # plus ringway itself (mock route)
#   ROUNDS=7 WORKLOADS="get" bench/h2-choice/run.sh
#
# Needs: cargo, python3, h2load (nghttp2-client), taskset, flock; 2 CPUs
# (the server on SERVER_CPU=0, h2load on LOAD_CPU=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${ROUNDS:-5}
workloads=${WORKLOADS:-get get-path post}
servers=${SERVERS:-monoio-http,own,own-raw}
out=${OUT:-$here/target/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}

for tool in cargo python3 taskset flock; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is needed" >&2; exit 2; }
done
[[ -x ${H2LOAD:-/usr/bin/h2load} ]] || { echo "run.sh: h2load is needed (apt-get install nghttp2-client)" >&2; exit 2; }

(cd "$here" && cargo build --release --locked)
if [[ ${RINGWAY:-0} == 1 ]]; then
    (cd "$root" && cargo build --release --workspace --bins)
    servers="$servers,ringway"
fi
mkdir -p "$(dirname "$out")"
echo "servers: $servers; workloads: $workloads; rounds: $rounds; results: $out"
for ((i = 0; i < rounds; i++)); do
    for wl in $workloads; do
        la=$(cat /proc/loadavg)
        echo "round $i $wl, loadavg before: $la"
        flock /tmp/bench.lock -c "python3 '$here/measure.py' round --workload $wl --servers $servers --index $i --out '$out' --loadavg '$la'"
    done
done
python3 "$here/measure.py" report "$out"
# The HPACK micro-measurement (one field decoded 200,000 times per line), 3 times.
echo
echo "HPACK: one :path literal per decode, pinned to CPU ${SERVER_CPU:-0}"
flock /tmp/bench.lock -c "for i in 1 2 3; do taskset -c ${SERVER_CPU:-0} '$here/target/release/h2-choice' hpack ${SERVER_CPU:-0}; done"
