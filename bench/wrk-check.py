#!/usr/bin/env python3
"""The cross-check with wrk that issue #20 asks for next to ringway-bench:
wrk 4.1 (one thread, CPU 1) -> proxy (ringway, nginx or HAProxy, one
worker on CPU 0) -> `ringway upstream` (CPU 1), interleaved rounds, requests
per proxy CPU-second (utime + stime from /proc before and after each 5 s
run, after a 1 s warm-up). Scenarios as in `ringway-bench compare`: get-64,
get-256, and new-conn (wrk -H 'Connection: close'). Needs
`cargo build --release -p ringway`, wrk, nginx and haproxy installed.

    python3 bench/wrk-check.py [ROUNDS] [SECONDS]
"""
import os, re, socket, statistics, subprocess, sys, tempfile, time
RW=os.path.join(os.path.dirname(os.path.abspath(__file__)),"../target/release/ringway")
D=tempfile.mkdtemp(prefix="wrk-check-")
UP=19000; PORT=19100
ROUNDS=int(sys.argv[1]) if len(sys.argv)>1 else 3
SECS=sys.argv[2] if len(sys.argv)>2 else "5"
open(f"{D}/rw.toml","w").write(f"""[server]
listen = ["127.0.0.1:{PORT}"]
workers = 1
pin = false
[[upstream]]
name = "app"
targets = ["127.0.0.1:{UP}"]
max_idle_per_target = 1024
[[route]]
path = "/"
upstream = "app"
[[route]]
path = "/{{proxy+}}"
upstream = "app"
""")
open(f"{D}/ng.conf","w").write(f"""user root; daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 20000;
pid {D}/nginx.pid; error_log {D}/error.log warn;
events {{ worker_connections 10000; }}
http {{ access_log off; keepalive_timeout 60s; keepalive_requests 1000000;
 upstream app {{ server 127.0.0.1:{UP}; keepalive 1024; keepalive_requests 1000000; }}
 server {{ listen 127.0.0.1:{PORT}; location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_request_buffering off; }} }} }}
""")
open(f"{D}/ha.cfg","w").write(f"""global
    nbthread 1
    maxconn 10000
    no strict-limits
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
frontend bench
    bind 127.0.0.1:{PORT}
    default_backend app
backend app
    http-reuse always
    server s1 127.0.0.1:{UP}
""")
PROX={'ringway':[RW,'serve','-c',f'{D}/rw.toml'],'nginx':['nginx','-c',f'{D}/ng.conf','-p',D],'haproxy':['haproxy','-f',f'{D}/ha.cfg']}
SC={'get-64':['-c','64'],'get-256':['-c','256'],'new-conn':['-c','64','-H','Connection: close']}
def cpu(pid):
    f=open(f'/proc/{pid}/stat').read().rsplit(')',1)[1].split()
    return (int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK')
def wait_port(p, up=True):
    for _ in range(600):
        try:
            socket.create_connection(('127.0.0.1',p),0.1).close()
            if up: return
        except OSError:
            if not up: return
        time.sleep(0.01)
    raise SystemExit(f'port {p} state')
def free(p):
    for _ in range(400):
        s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1)
        try: s.bind(('127.0.0.1',p)); s.close(); return
        except OSError: s.close(); time.sleep(0.005)
origin=subprocess.Popen(['taskset','-c','1',RW,'upstream','--listen',f'127.0.0.1:{UP}'],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
wait_port(UP)
res={}
try:
  for r in range(ROUNDS):
    for s,args in SC.items():
        order=list(PROX) if r%2==0 else list(PROX)[::-1]
        for px in order:
            free(PORT)
            p=subprocess.Popen(['taskset','-c','0']+PROX[px],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
            wait_port(PORT); time.sleep(0.2)
            subprocess.run(['taskset','-c','1','wrk','-t1','-d1s']+args+[f'http://127.0.0.1:{PORT}/'],capture_output=True)
            c0=cpu(p.pid)
            out=subprocess.run(['taskset','-c','1','wrk','-t1',f'-d{SECS}s']+args+[f'http://127.0.0.1:{PORT}/'],capture_output=True,text=True).stdout
            c1=cpu(p.pid)
            n=int(re.search(r'(\d+) requests in',out).group(1))
            bad=re.search(r'Non-2xx or 3xx responses: (\d+)',out); sock=re.search(r'Socket errors: (.*)',out)
            p.terminate(); p.wait()
            v=n/(c1-c0)
            res.setdefault((s,px),[]).append(v)
            print(r,s,px,n,round(v),'non2xx',bad.group(1) if bad else 0, sock.group(1) if sock else '',flush=True)
finally:
    origin.terminate(); origin.wait()
print('| scenario | ringway | nginx | haproxy | ringway / nginx | ringway / haproxy |')
for s in SC:
    m={px:statistics.median(res[(s,px)]) for px in PROX}
    rn=statistics.median([a/b for a,b in zip(res[(s,'ringway')],res[(s,'nginx')])])
    rh=statistics.median([a/b for a,b in zip(res[(s,'ringway')],res[(s,'haproxy')])])
    print(f"| {s} | {m['ringway']:,.0f} | {m['nginx']:,.0f} | {m['haproxy']:,.0f} | {rn:.2f}× | {rh:.2f}× |")
