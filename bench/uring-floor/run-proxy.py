#!/usr/bin/env python3
"""Issue #20's targets against the floor of this machine: requests per proxy
CPU-second of the floor proxy (`src/bin/proxy.rs`), ringway and nginx, the
same way `ringway-bench compare` measures them: each proxy alone on CPU 0,
ringway-load (1 thread) and one `ringway upstream` origin on CPU 1, a 1 s
warm-up, then SECONDS measured; the proxy tree's utime + stime from /proc.
Rounds interleave the proxies (the order rotates every round); medians.

    cd bench/uring-floor && cargo build --release
    cargo build --release -p ringway          # in the workspace
    python3 bench/uring-floor/run-proxy.py [--wrk] [ROUNDS] [SECONDS] [SCENARIO ...]

SCENARIO: get-64, get-256 (keep-alive GETs over 64 / 256 connections),
new-conn (a new connection per request, 64 at a time). Needs nginx.
`--wrk`: the load is wrk 4.1 (one thread, CPU 1) instead of ringway-load,
as in `bench/wrk-check.py` (new-conn: `-H 'Connection: close'`), to see
what the floor itself reaches under the other harness.
"""
import json, os, re, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.normpath(os.path.join(HERE, "../.."))
RW = f"{TOP}/target/release/ringway"
LOAD = f"{TOP}/target/release/ringway-load"
FLOOR = f"{HERE}/target/release/proxy"
WRK = "--wrk" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--wrk"]
ROUNDS = int(ARGS[0]) if len(ARGS) > 0 else 5
SECS = int(ARGS[1]) if len(ARGS) > 1 else 5
SCENARIOS = ARGS[2:] or ["get-64", "get-256", "new-conn"]
UP = 19000
TCK = os.sysconf("SC_CLK_TCK")
D = tempfile.mkdtemp(prefix="floor-proxy-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tree_cpu(pid):
    """utime + stime of pid and its descendants, in seconds."""
    kids, total = {}, 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(f[1]), []).append((int(p), int(f[11]) + int(f[12])))
    own = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    total, todo = int(own[11]) + int(own[12]), [pid]
    while todo:
        for child, ticks in kids.get(todo.pop(), []):
            total += ticks
            todo.append(child)
    return total / TCK


def ringway(port):
    open(f"{D}/rw.toml", "w").write(f"""[server]
listen = ["127.0.0.1:{port}"]
workers = 1
pin = false
[[upstream]]
name = "app"
targets = ["127.0.0.1:{UP}"]
max_idle_per_target = 1024
[[route]]
path = "/"
upstream = "app"
""")
    return [RW, "serve", "-c", f"{D}/rw.toml"]


def nginx(port):
    open(f"{D}/nginx.conf", "w").write(f"""daemon off;
master_process on;
worker_processes 1;
pid {D}/nginx.pid;
error_log {D}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream app {{ server 127.0.0.1:{UP}; keepalive 1024; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    keepalive_requests 1000000;
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    return ["nginx", "-c", f"{D}/nginx.conf", "-p", D]


def floor(port, scenario, single=False):
    mode = ["close"] if scenario == "new-conn" else ["single"] if single else []
    return [FLOOR, f"127.0.0.1:{port}", f"127.0.0.1:{UP}"] + mode


def up_and_serving(port):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.025)
    raise SystemExit(f"nothing listens on {port}")


def run(name, scenario):
    port = free_port()
    cmd = {"floor": lambda: floor(port, scenario), "floor-single": lambda: floor(port, scenario, True),
           "ringway": lambda: ringway(port), "nginx": lambda: nginx(port)}[name]()
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        up_and_serving(port)
        conns = "256" if scenario == "get-256" else "64"
        url = f"http://127.0.0.1:{port}/"
        if WRK:
            args = ["taskset", "-c", "1", "wrk", "-t1", "-c", conns] + (["-H", "Connection: close"] if scenario == "new-conn" else [])
            subprocess.run(args + ["-d1s", url], capture_output=True, check=True)
            c0 = tree_cpu(p.pid)
            out = subprocess.run(args + [f"-d{SECS}s", url], capture_output=True, text=True, check=True).stdout
            c1 = tree_cpu(p.pid)
            # The floor forwards the origin's keep-alive response to a
            # `Connection: close` client and then closes: wrk counts that
            # close as a read error after the response it counted.
            errors = re.search(r"Socket errors: connect (\d+), read \d+, write (\d+), timeout (\d+)", out)
            clean = errors is None or (name.startswith("floor") and errors.groups() == ("0", "0", "0"))
            assert "Non-2xx" not in out and clean, out
            return int(re.search(r"(\d+) requests in", out).group(1)) / (c1 - c0)
        args = ["taskset", "-c", "1", LOAD, "-q", "-t", "1", "-c", conns] + (["--no-keepalive"] if scenario == "new-conn" else [])
        subprocess.run(args + ["-d", "1s", url], stdout=subprocess.DEVNULL, check=True)
        c0 = tree_cpu(p.pid)
        subprocess.run(args + ["-d", f"{SECS}s", "--json", f"{D}/r.json", url], stdout=subprocess.DEVNULL, check=True)
        c1 = tree_cpu(p.pid)
        r = json.load(open(f"{D}/r.json"))
        assert r["errors"]["total"] == 0 if isinstance(r["errors"], dict) else r["errors"] == 0, r["errors"]
        return r["requests"] / (c1 - c0)
    finally:
        p.terminate()
        p.wait()


def main():
    origin = subprocess.Popen(["taskset", "-c", "1", RW, "upstream", "--listen", f"127.0.0.1:{UP}", "--threads", "1", "--body-size", "13"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        up_and_serving(UP)
        names = ["floor", "floor-single", "ringway", "nginx"]
        res = {(s, n): [] for s in SCENARIOS for n in names}
        for r in range(ROUNDS):
            order = names[r % 4:] + names[:r % 4]
            for s in SCENARIOS:
                for n in order:
                    if n == "floor-single" and s == "new-conn":
                        continue
                    v = run(n, s)
                    res[(s, n)].append(v)
                    print(f"round {r + 1} {s} {n}: {v:,.0f} req per CPU-s", flush=True)
        def ratio(s, a, b):
            rs = [x / y for x, y in zip(res[(s, a)], res[(s, b)])]
            return f"{statistics.median(rs):.2f} ({min(rs):.2f}–{max(rs):.2f})" if rs else "—"

        print(f"\nLoad: {'wrk' if WRK else 'ringway-load'}. Medians of the per-round figures, and of the per-round ratios (range):\n")
        print("| scenario | floor | floor, ringway's operations | ringway | nginx | floor / nginx | floor-single / nginx | ringway / nginx | ringway / floor |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in SCENARIOS:
            f, g, w, x = (f"{statistics.median(res[(s, n)]):,.0f}" if res[(s, n)] else "—" for n in names)
            print(f"| {s} | {f} | {g} | {w} | {x} | {ratio(s, 'floor', 'nginx')} | {ratio(s, 'floor-single', 'nginx')} "
                  f"| {ratio(s, 'ringway', 'nginx')} | {ratio(s, 'ringway', 'floor')} |")
    finally:
        origin.terminate()


main()
