#!/usr/bin/env python3
"""Interleaved rounds of uring-floor, ringway-load and wrk against one nginx
origin (one worker, pinned to CPU 0; every generator one thread on CPU 1).
Prints requests per generator CPU-second (utime + stime from wait4) per run,
and the medians and ratios. Usage (from the repository root, after
`cargo build --release -p ringway-load` and `cargo build --release` here):

    python3 bench/uring-floor/run.py [ROUNDS] [SECONDS] [CONNECTIONS...]
"""
import os, re, shutil, socket, statistics, subprocess, sys, tempfile, time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECS = sys.argv[2] if len(sys.argv) > 2 else "5"
CONNS = [int(c) for c in sys.argv[3:]] or [64, 256]
HERE = os.path.dirname(os.path.abspath(__file__))
FLOOR = os.path.join(HERE, "target/release/uring-floor")
LOAD = os.path.join(HERE, "../../target/release/ringway-load")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start_nginx(port, d):
    conf = os.path.join(d, "nginx.conf")
    open(conf, "w").write(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{ listen 127.0.0.1:{port} backlog=4096; keepalive_requests 100000000;
           location / {{ return 200 "hello, ringway\\n"; }} }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", "0", shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-p", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close(); return p
        except OSError:
            time.sleep(0.02)
    raise SystemExit("nginx did not start")

def run(cmd):
    p = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    cpu = ru.ru_utime + ru.ru_stime
    m = re.search(r"requests\s+(\d+)", out) or re.search(r"(\d+) requests in", out)
    if status != 0 or not m:
        raise SystemExit(f"{cmd[0]} failed: {out}")
    return int(m.group(1)) / cpu

def main():
    d = tempfile.mkdtemp(prefix="uring-floor-")
    port = free_port()
    nginx = start_nginx(port, d)
    url = f"http://127.0.0.1:{port}/"
    try:
        for c in CONNS:
            tools = {
                "uring-floor": [FLOOR, f"127.0.0.1:{port}", str(c), SECS],
                "ringway-load": [LOAD, "-t1", "-q", "-c", str(c), f"-d{SECS}s", url],
                "wrk": ["wrk", "-t1", "-c", str(c), f"-d{SECS}s", url],
            }
            res = {t: [] for t in tools}
            for r in range(ROUNDS):
                order = list(tools) if r % 2 == 0 else list(tools)[::-1]
                for t in order:
                    res[t].append(run(tools[t]))
                print(f"{c} connections, round {r + 1}: " + ", ".join(f"{t} {res[t][-1]:.0f}" for t in tools), flush=True)
            med = {t: statistics.median(v) for t, v in res.items()}
            ratio = lambda a, b: statistics.median(x / y for x, y in zip(res[a], res[b]))
            print(f"| {c} | {med['uring-floor']:,.0f} | {med['ringway-load']:,.0f} | {med['wrk']:,.0f} | "
                  f"{ratio('ringway-load', 'wrk'):.2f}× | {ratio('uring-floor', 'wrk'):.2f}× | {ratio('ringway-load', 'uring-floor'):.2f} |", flush=True)
    finally:
        nginx.terminate(); nginx.wait(); shutil.rmtree(d, ignore_errors=True)

main()
