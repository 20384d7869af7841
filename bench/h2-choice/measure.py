#!/usr/bin/env python3
"""Measurement driver for the h2-choice experiment (see README.md).

  measure.py round --workload get|post --servers monoio-http,own,... --index I --out FILE.jsonl
      One round: each server in turn (order rotated by I, so every server
      takes every position across rounds) is started pinned to the server
      CPU, warmed up, measured once with h2load pinned to the load CPU, and
      stopped. One JSON line per run is appended to FILE. Meant to run
      under `flock /tmp/bench.lock`, which run.sh does; it compiles nothing.

  measure.py report FILE.jsonl
      Markdown tables: median and min–max per server and workload, and the
      ratios of medians against monoio-http.

Every run talks to 127.0.0.1 only, and every wait is bounded.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("H2C_BIN", os.path.join(HERE, "target", "release", "h2-choice"))
RINGWAY = os.environ.get("RINGWAY_BIN", os.path.join(ROOT, "target", "release", "ringway"))
H2LOAD = os.environ.get("H2LOAD", "/usr/bin/h2load")
SERVER_CPU = os.environ.get("SERVER_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
CLK_TCK = os.sysconf("SC_CLK_TCK")

WORKLOADS = {
    # name: (h2load args, requests, warm-up requests)
    # GET /: every header after the first request is an index into the
    # HPACK tables (`:path: /` is in the static table).
    "get": (["-c", "16", "-m", "64"], 1_000_000, 50_000),
    # GET of an API-like path: nghttp2 never indexes :path (nor
    # content-length), so each request carries it as a Huffman-coded literal.
    "get-path": (["-c", "16", "-m", "64"], 1_000_000, 50_000),
    # POST / with a 64 KiB body (content-length is a literal every time).
    "post": (["-c", "16", "-m", "64"], 50_000, 5_000),
}
PATHS = {"get": "/", "get-path": "/api/v1/items/12345", "post": "/"}
POST_BODY_BYTES = 64 * 1024


def port_for(server):
    return {"monoio-http": 18481, "own": 18482, "own-raw": 18483, "ringway": 18484}[server]


def ringway_config(port, path):
    with open(path, "w") as f:
        f.write(
            f"""[server]
listen = [{{ addr = "127.0.0.1:{port}", h2c = true }}]
workers = 1
pin = [{SERVER_CPU}]

[[route]]
path = "/"
[route.mock]
status = 200
body = "hello, world\\n"

[[route]]
path = "/{{proxy+}}"
[route.mock]
status = 200
body = "hello, world\\n"
"""
        )


def start(server, tmp):
    port = port_for(server)
    if server == "ringway":
        cfg = os.path.join(tmp, "ringway.toml")
        ringway_config(port, cfg)
        cmd = ["taskset", "-c", SERVER_CPU, RINGWAY, "serve", "-c", cfg]
    else:
        cmd = ["taskset", "-c", SERVER_CPU, BIN, server, "--port", str(port),
               "--cpu", SERVER_CPU, "--lifetime", "300"]
    log = open(os.path.join(tmp, f"{server}.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"{server} exited early, see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    raise RuntimeError(f"{server} did not listen on {port} within 10 s")


def stop(p):
    # Only the process this script started, by its id.
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_ns(pid):
    """Time on CPU of all the process's threads, in ns (schedstat: finer
    than the clock ticks of utime+stime; a cross-check)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def h2load(port, workload, n, body_file, log_file=None):
    args, _, _ = WORKLOADS[workload]
    cmd = ["taskset", "-c", LOAD_CPU, H2LOAD, *args, "-n", str(n)]
    if workload == "post":
        cmd += ["-d", body_file]
    if log_file:
        cmd += ["--log-file", log_file]
    cmd.append(f"http://127.0.0.1:{port}{PATHS[workload]}")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return r.stdout + r.stderr


def parse_h2load(out):
    res = {}
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    if m:
        secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        res["wall_s"] = secs
        res["req_per_s"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        res["done"] = int(m.group(3))
        res["succeeded"] = int(m.group(4))
        res["failed"] = int(m.group(5))
        res["errored"] = int(m.group(6))
    m = re.search(r"status codes: (\d+) 2xx", out)
    if m:
        res["ok_2xx"] = int(m.group(1))
    m = re.search(r"Application protocol: (\S+)", out)
    if m:
        res["protocol"] = m.group(1)
    return res


def latencies(log_file):
    """p50 and p99 in ms from h2load's per-request log (start, status, µs)."""
    xs = []
    with open(log_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                xs.append(int(parts[2]))
    if not xs:
        return None, None
    xs.sort()

    def q(p):
        return xs[min(len(xs) - 1, int(p * len(xs)))] / 1000.0

    return q(0.50), q(0.99)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def do_round(a):
    servers = a.servers.split(",")
    k = a.index % len(servers)
    order = servers[k:] + servers[:k]
    _, n, warm = WORKLOADS[a.workload]
    with tempfile.TemporaryDirectory(prefix="h2choice-") as tmp:
        body = os.path.join(tmp, "body")
        with open(body, "wb") as f:
            f.write(b"x" * POST_BODY_BYTES)
        for server in order:
            p, port = start(server, tmp)
            try:
                h2load(port, a.workload, warm, body)
                before = cpu_seconds(p.pid)
                ns0 = run_ns(p.pid)
                t0 = time.time()
                log = os.path.join(tmp, "req.log")
                out = h2load(port, a.workload, n, body, log)
                wall = time.time() - t0
                after = cpu_seconds(p.pid)
                ns1 = run_ns(p.pid)
            finally:
                stop(p)
            r = parse_h2load(out)
            p50, p99 = latencies(log)
            cpu = after - before
            ok = r.get("ok_2xx", 0)
            rec = {
                "round": a.index,
                "workload": a.workload,
                "server": server,
                "position": order.index(server),
                "loadavg_before_round": a.loadavg or loadavg(),
                "server_cpu_s": round(cpu, 3),
                "server_sched_cpu_s": round((ns1 - ns0) / 1e9, 4),
                "req_per_cpu_s": round(ok / cpu, 1) if cpu > 0 else None,
                "p50_ms": p50,
                "p99_ms": p99,
                "outer_wall_s": round(wall, 3),
                **r,
            }
            if r.get("done") != n or r.get("failed", 1) or ok != n:
                rec["note"] = "errors or missing responses; h2load said: " + out[-600:]
            with open(a.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(f"  {a.workload:4} {server:12} {r.get('req_per_s', 0):>10.0f} req/s  "
                  f"cpu {cpu:6.2f} s  {rec['req_per_cpu_s']} req/cpu-s  p99 {p99} ms"
                  + ("  ERRORS" if "note" in rec else ""), flush=True)


def med_range(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—", None
    m = statistics.median(xs)
    return f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})", m


def do_report(a):
    recs = [json.loads(l) for l in open(a.file) if l.strip()]
    servers = []
    for r in recs:
        if r["server"] not in servers:
            servers.append(r["server"])
    out = []
    for wl in WORKLOADS:
        rows = [r for r in recs if r["workload"] == wl]
        if not rows:
            continue
        rounds = len({r["round"] for r in rows})
        out.append(f"\n### {wl.upper()} ({rounds} rounds)\n")
        out.append("| server | req per server CPU-s | req/s | server CPU-s | req per CPU-s (schedstat) | p50 ms | p99 ms | runs with errors |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        meds = {}
        for s in servers:
            rs = [r for r in rows if r["server"] == s]
            if not rs:
                continue
            cps, m1 = med_range([r.get("req_per_cpu_s") for r in rs], lambda v: f"{v:,.0f}")
            rps, m2 = med_range([r.get("req_per_s") for r in rs], lambda v: f"{v:,.0f}")
            cpu, _ = med_range([r.get("server_cpu_s") for r in rs], lambda v: f"{v:.2f}")
            sched, _ = med_range([r.get("succeeded", 0) / r["server_sched_cpu_s"]
                                  if r.get("server_sched_cpu_s") else None for r in rs],
                                 lambda v: f"{v:,.0f}")
            p50, m3 = med_range([r.get("p50_ms") for r in rs], lambda v: f"{v:.1f}")
            p99, m4 = med_range([r.get("p99_ms") for r in rs], lambda v: f"{v:.1f}")
            errs = sum(1 for r in rs if "note" in r)
            meds[s] = (m1, m2, m3, m4)
            out.append(f"| {s} | {cps} | {rps} | {cpu} | {sched} | {p50} | {p99} | {errs} of {len(rs)} |")
        if "monoio-http" in meds:
            base = meds["monoio-http"]
            out.append("")
            out.append("Ratios of medians, server ÷ monoio-http (CPU efficiency, req/s, p99 latency):\n")
            for s, m in meds.items():
                if s == "monoio-http" or None in (m[0], m[1], base[0], base[1]):
                    continue
                p99r = f"{m[3] / base[3]:.2f}" if m[3] and base[3] else "—"
                out.append(f"- {s}: {m[0] / base[0]:.2f} × req per CPU-s, {m[1] / base[1]:.2f} × req/s, p99 {p99r} ×")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("round")
    r.add_argument("--workload", choices=list(WORKLOADS), required=True)
    r.add_argument("--servers", required=True)
    r.add_argument("--index", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--loadavg", default=None)
    rep = sub.add_parser("report")
    rep.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "round":
        do_round(a)
    else:
        do_report(a)


if __name__ == "__main__":
    sys.exit(main())
