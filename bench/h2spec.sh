#!/usr/bin/env bash
# h2spec against ringway: HTTP/2 conformance of the downstream side.
#
# Starts the bench origin (`ringway upstream`, 13-byte bodies) and ringway
# with two listeners in front of it — cleartext HTTP/2 with prior knowledge
# (`h2c = true`) and TLS with ALPN h2 — all on 127.0.0.1, runs h2spec
# against each, and writes bench/results/h2spec.md: passed / failed /
# skipped per section, and every failing case with what h2spec expected and
# what it got.
#
#   bench/h2spec.sh                 # both listeners
#   H2SPEC_ARGS=--strict bench/h2spec.sh
#   OUT=/tmp/h2spec.md bench/h2spec.sh
#
# Needs: h2spec (on PATH, or H2SPEC=/path), openssl, python3 (reads the
# JUnit reports), and the ringway binary (RINGWAY=/path, else
# target/release/ringway, brought up to date with cargo). Exits 0 when the
# runs completed, whatever the score; 2 when something it needs is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${OUT:-$here/results/h2spec.md}
h2spec=${H2SPEC:-$(command -v h2spec || true)}
extra=${H2SPEC_ARGS:-}

if [[ -z "$h2spec" || ! -x "$h2spec" ]]; then
    cat >&2 <<'EOF'
h2spec.sh: h2spec not found (set H2SPEC=/path/to/h2spec or put it on PATH).
  With the Go module proxy:  go install github.com/summerwind/h2spec/cmd/h2spec@latest
  Without it, from a checkout of github.com/summerwind/h2spec and Debian's Go
  libraries (golang-github-spf13-cobra-dev golang-github-fatih-color-dev
  golang-golang-x-net-dev and their dependencies), in GOPATH mode:
    GO111MODULE=off GOPATH=$GP:/usr/share/gocode go build ./cmd/h2spec
  with the checkout at $GP/src/github.com/summerwind/h2spec.
EOF
    exit 2
fi
for tool in openssl python3; do
    command -v "$tool" >/dev/null || { echo "h2spec.sh: $tool is needed" >&2; exit 2; }
done

if [[ -n "${RINGWAY:-}" ]]; then
    ringway=$RINGWAY
else
    (cd "$root" && cargo build --release -q -p ringway)
    ringway=${CARGO_TARGET_DIR:-$root/target}/release/ringway
fi
[[ -x "$ringway" ]] || { echo "h2spec.sh: no ringway binary at $ringway" >&2; exit 2; }

work=$(mktemp -d /tmp/h2spec-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -z "${KEEP:-}" ]]; then
        rm -rf "$work"
    else
        echo "h2spec.sh: kept $work" >&2
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts on 127.0.0.1:$1 (at most 10 s) while $2 runs.
wait_port() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

origin_port=$(free_port)
h2c_port=$(free_port)
tls_port=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$work/site.key" -out "$work/site.pem" 2>"$work/openssl.log"

"$ringway" upstream --listen "127.0.0.1:$origin_port" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_port "$origin_port" "${pids[-1]}" || { cat "$work/origin.log" >&2; exit 1; }

cat >"$work/gateway.toml" <<EOF
# written by bench/h2spec.sh
[server]
listen = [
  { addr = "127.0.0.1:$h2c_port", h2c = true },
  { addr = "127.0.0.1:$tls_port", tls = { cert = "$work/site.pem", key = "$work/site.key" }, alpn = ["h2", "http/1.1"] },
]
workers = 1

[[upstream]]
name = "origin"
targets = ["127.0.0.1:$origin_port"]

[[route]]
path = "/"
upstream = "origin"

[[route]]
path = "/{proxy+}"
upstream = "origin"
EOF

"$ringway" serve -c "$work/gateway.toml" >"$work/ringway.log" 2>&1 &
pids+=($!)
ringway_pid=${pids[-1]}
if ! wait_port "$h2c_port" "$ringway_pid" || ! wait_port "$tls_port" "$ringway_pid"; then
    echo "h2spec.sh: ringway did not start:" >&2
    cat "$work/ringway.log" >&2
    exit 1
fi

# h2spec exits non-zero when a case fails; the report is what matters.
# shellcheck disable=SC2086
"$h2spec" -h 127.0.0.1 -p "$h2c_port" -j "$work/h2c.xml" $extra >"$work/h2c.txt" 2>&1 || true
# shellcheck disable=SC2086
"$h2spec" -h 127.0.0.1 -p "$tls_port" -t -k -j "$work/tls.xml" $extra >"$work/tls.txt" 2>&1 || true
alive=yes
kill -0 "$ringway_pid" 2>/dev/null || alive=no

head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$root" status --porcelain -- engine 2>/dev/null | head -1)
[[ -n "$dirty" ]] && head="$head (with uncommitted engine/ changes)"
version=$("$h2spec" --version 2>&1 | head -1)

mkdir -p "$(dirname "$out")"
python3 - "$work" "$out" "$head" "$version" "$extra" "$alive" <<'PY'
import sys, datetime, xml.etree.ElementTree as ET

work, out, head, version, extra, alive = sys.argv[1:7]
runs = [("h2c", "cleartext, prior knowledge (`h2c = true`)", "-p PORT"),
        ("tls", "TLS, ALPN h2", "-p PORT -t -k")]

def read(name):
    """[(section package, section name, [(n, title, outcome, detail)])]"""
    try:
        root = ET.parse(f"{work}/{name}.xml").getroot()
    except (OSError, ET.ParseError) as e:
        return None, str(e)
    sections = []
    for suite in root.iter("testsuite"):
        cases = []
        for n, case in enumerate(suite.iter("testcase"), 1):
            bad = case.find("error")
            if bad is None:
                bad = case.find("failure")
            if bad is not None:
                outcome, detail = "failed", (bad.text or "").strip()
            elif case.find("skipped") is not None:
                outcome, detail = "skipped", ""
            else:
                outcome, detail = "passed", ""
            cases.append((n, case.get("classname", ""), outcome, detail))
        sections.append((suite.get("package", ""), suite.get("name", ""), cases))
    return sections, None

results = {name: read(name) for name, _, _ in runs}

def counts(cases):
    return [sum(1 for c in cases if c[2] == o) for o in ("passed", "failed", "skipped")]

md = ["# h2spec against ringway", ""]
md.append(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC")
md.append(f"- ringway: tree at {head}; one worker, the bench origin (`ringway upstream`, 13-byte bodies) behind `/` and `/{{proxy+}}`")
md.append(f"- h2spec: {version}; `h2spec -h 127.0.0.1 {{-p PORT | -p PORT -t -k}}{(' ' + extra) if extra else ''}` "
          "(default test selection: generic, http2 and hpack; strict cases only with `--strict`)")
md.append("- command: `bench/h2spec.sh`")
if alive != "yes":
    md.append("- **ringway was no longer running after the runs** (see its log)")
md.append("")
md.append("## Score")
md.append("")
md.append("| listener | tests | passed | failed | skipped |")
md.append("|---|---:|---:|---:|---:|")
for name, title, _ in runs:
    sections, err = results[name]
    if sections is None:
        md.append(f"| {title} | no report ({err}) | | | |")
        continue
    allc = [c for _, _, cs in sections for c in cs]
    p, f, s = counts(allc)
    md.append(f"| {title} | {len(allc)} | {p} | {f} | {s} |")
md.append("")

md.append("## Per section")
md.append("")
md.append("passed / failed / skipped")
md.append("")
md.append("| section | " + " | ".join(name for name, _, _ in runs) + " |")
md.append("|---|" + "---:|" * len(runs))
order, titles, per = [], {}, {}
for name, _, _ in runs:
    sections, _ = results[name]
    for pkg, sec, cases in sections or []:
        if pkg not in titles:
            order.append(pkg)
            titles[pkg] = sec
        per[(name, pkg)] = counts(cases)
for pkg in order:
    cells = []
    for name, _, _ in runs:
        c = per.get((name, pkg))
        cells.append("—" if c is None else ("**%d / %d / %d**" if c[1] else "%d / %d / %d") % tuple(c))
    md.append(f"| `{pkg}` {titles[pkg]} | " + " | ".join(cells) + " |")
md.append("")

md.append("## Failing cases")
md.append("")
md.append("`section/n` is the id h2spec takes to run one case (`h2spec http2/6.5.3/2`). "
          "h2spec's JUnit report puts what it expected first and what it got last.")
md.append("")
for name, title, _ in runs:
    sections, _ = results[name]
    failing = [(pkg, n, t, d) for pkg, _, cs in (sections or []) for n, t, o, d in cs if o == "failed"]
    md.append(f"### {title}: {len(failing)}")
    md.append("")
    for pkg, n, t, d in failing:
        lines = [l.strip() for l in d.splitlines() if l.strip()]
        got = lines[-1] if lines else "?"
        want = "; ".join(lines[:-1]) if len(lines) > 1 else "?"
        md.append(f"- `{pkg}/{n}` {t} — expected {want}; got **{got}**")
    md.append("")

open(out, "w").write("\n".join(md).rstrip() + "\n")
PY
echo "h2spec.sh: wrote $out" >&2
for name in h2c tls; do
    echo "$name: $(grep -E '^[0-9]+ tests' "$work/$name.txt" || echo 'no summary')" >&2
done
if [[ "$alive" != yes ]]; then
    echo "h2spec.sh: ringway exited during the runs:" >&2
    tail -20 "$work/ringway.log" >&2
fi
