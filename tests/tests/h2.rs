//! HTTP/2 downstream (issue #21) through the binary: curl over TLS (ALPN
//! h2, and the fall back to HTTP/1.1) and with prior knowledge on an h2c
//! listener that also serves pipelined HTTP/1.1; nghttp with 100 streams on
//! one connection; policies, request mapping and malformed requests per
//! stream; bodies both ways by SHA-256 with flow control, and memory that
//! stays bounded when a client never opens its window or never reads;
//! trailers and 103 Early Hints; the attacks (rapid reset, CONTINUATION
//! flood, HPACK bomb, control-frame floods, streams past the limit) each
//! followed by a normal client that is still served; GOAWAY on SIGTERM, on
//! reload and on idle; HTTP/2.0 in access log lines; the `proto` label and the h2 metrics; config errors.
//!
//! The raw client is `ringway_tests::h2raw`; curl and nghttp (Debian
//! packages curl and nghttp2-client) are the real clients.

use ringway_tests::client::{self, read_response, send_raw};
use ringway_tests::gateway::TempDir;
use ringway_tests::h2raw::{self, FloodEnd, H2, code, flag, kind, setting};
use ringway_tests::pki::Ca;
use ringway_tests::{Gateway, Origin, Reply, WAIT, pattern, prom, sha256, wait_until};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

// ---- the rig: a gateway with an h2c listener, maybe a TLS one, an admin one

#[derive(Default)]
struct Opts {
    /// Add a TLS listener (certificate for `site.test`).
    tls: bool,
    /// `alpn = ...` on the TLS listener, e.g. `["http/1.1"]`.
    alpn: Option<&'static str>,
    /// Lines of `[server.h2]`.
    h2: &'static str,
    /// Lines of `[server.timeouts]`.
    timeouts: &'static str,
    /// Routes (and what they need) instead of the catch-all routes.
    routes: Option<String>,
    /// Environment for the gateway.
    env: Vec<(String, String)>,
}

struct Rig {
    gw: Gateway,
    /// The h2c listener: HTTP/2 with prior knowledge, and HTTP/1.1.
    h2c: SocketAddr,
    /// The TLS listener, when asked for.
    tls: Option<SocketAddr>,
    admin: SocketAddr,
    /// The CA of the TLS listener's certificate.
    ca: Option<Ca>,
    /// Holds the certificates and curl's files.
    dir: TempDir,
}

const CATCH_ALL: &str = "[[route]]\npath = \"/\"\nupstream = \"app\"\n\n[[route]]\npath = \"/{proxy+}\"\nupstream = \"app\"\n";

impl Rig {
    fn start(origin: &Origin, opts: Opts) -> Rig {
        let dir = TempDir::new();
        let mut tls_listener = String::new();
        let mut test_ca = None;
        if opts.tls {
            let ca = Ca::new("h2 test ca");
            let (cert, key) = ca.server(&["site.test"]).write(&dir.0, "site");
            std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
            let alpn = opts
                .alpn
                .map(|a| format!(", alpn = {a}"))
                .unwrap_or_default();
            tls_listener = format!(
                ", {{ addr = \"127.0.0.1:0\", tls = {{ cert = \"{}\", key = \"{}\" }}{alpn} }}",
                cert.display(),
                key.display()
            );
            test_ca = Some(ca);
        }
        let routes = opts.routes.as_deref().unwrap_or(CATCH_ALL);
        let config = format!(
            "[server]\nlisten = [{{ addr = \"127.0.0.1:0\", h2c = true }}{tls_listener}]\nworkers = 1\npin = false\nshutdown_timeout = \"10s\"\n\n[server.admin]\nlisten = \"127.0.0.1:0\"\n\n[server.h2]\n{}\n\n[server.timeouts]\n{}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{}\"]\nconnect_timeout = \"1s\"\nresponse_timeout = \"10s\"\n\n{routes}",
            opts.h2, opts.timeouts, origin.addr
        );
        let env: Vec<(&str, &str)> = opts
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let gw = Gateway::start_with_env(&config, &env);
        let expected = if opts.tls { 2 } else { 1 };
        assert_eq!(gw.addrs.len(), expected, "listeners: {:?}", gw.addrs);
        Rig {
            h2c: gw.addrs[0],
            tls: opts.tls.then(|| gw.addrs[1]),
            admin: gw.admin_addr(),
            gw,
            ca: test_ca,
            dir,
        }
    }

    /// curl with prior knowledge to the h2c listener.
    fn curl_h2c(&self, path: &str, args: &[&str]) -> Curl {
        let url = format!("http://127.0.0.1:{}{path}", self.h2c.port());
        let mut all = vec!["--http2-prior-knowledge"];
        all.extend_from_slice(args);
        all.push(&url);
        curl(&self.dir.0, &all)
    }

    /// curl over TLS to `site.test` (resolved to the TLS listener), trusting the test CA.
    fn curl_tls(&self, path: &str, args: &[&str]) -> Curl {
        let port = self.tls.expect("a TLS listener").port();
        let ca = self.dir.0.join("ca.pem").display().to_string();
        let resolve = format!("site.test:{port}:127.0.0.1");
        let url = format!("https://site.test:{port}{path}");
        let mut all = vec!["--cacert", &ca, "--resolve", &resolve];
        all.extend_from_slice(args);
        all.push(&url);
        curl(&self.dir.0, &all)
    }

    fn pid(&self) -> u32 {
        self.gw.child.id()
    }

    fn metrics(&self) -> Vec<prom::Sample> {
        prom::scrape(self.admin)
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        prom::value(&self.metrics(), name, labels)
    }

    /// After an attack: the process lives, a normal client on a new
    /// connection is served over HTTP/2, and resident memory stayed within
    /// [`RSS_ALLOWANCE_KIB`] of `baseline` the whole time `peak` watched.
    fn assert_unharmed(&mut self, baseline: u64, peak: &RssPeak, what: &str) {
        assert!(
            self.gw.child.try_wait().unwrap().is_none(),
            "ringway died after {what}: {:#?}",
            self.gw.log()
        );
        let r = self.curl_h2c("/after", &[]);
        assert_eq!(
            (r.status, r.version.as_str()),
            (200, "2"),
            "a normal client after {what}"
        );
        let top = peak.peak_kib();
        assert!(
            top <= baseline + RSS_ALLOWANCE_KIB,
            "{what}: resident memory reached {top} KiB from {baseline} KiB"
        );
    }

    /// Resident memory once a request has been served (buffers and pools warm).
    fn warm_baseline(&self) -> u64 {
        assert_eq!(self.curl_h2c("/warm", &[]).status, 200);
        rss_kib(self.pid())
    }
}

// ---- curl ----------------------------------------------------------------

struct Curl {
    status: u16,
    /// `%{http_version}`: "2", "1.1", ...
    version: String,
    /// Fields of the final head (names lowercased).
    headers: Vec<(String, String)>,
    /// Every head's status line and fields, as curl dumped them.
    dump: String,
    body: Vec<u8>,
}

impl Curl {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl with `args` (which end with the URL); panics when curl fails.
fn curl(dir: &Path, args: &[&str]) -> Curl {
    curl_with_stdin(dir, args, None)
}

fn curl_with_stdin(dir: &Path, args: &[&str], stdin: Option<&Path>) -> Curl {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let head = dir.join(format!("curl-{n}.head"));
    let body = dir.join(format!("curl-{n}.body"));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args);
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).unwrap()),
        None => cmd.stdin(Stdio::null()),
    };
    let out = cmd.output().expect("run curl (Debian package curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let w = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut parts = w.split_whitespace();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let version = parts.next().unwrap_or("").to_string();
    let dump = std::fs::read_to_string(&head).unwrap_or_default();
    let last = dump
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let headers = last
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join(format!("curl-{n}.body")));
    Curl {
        status,
        version,
        headers,
        dump,
        body,
    }
}

// ---- memory ------------------------------------------------------------------

/// How far above its warm baseline ringway's resident memory may go during
/// an attack or a stalled 512 MiB response.
const RSS_ALLOWANCE_KIB: u64 = 64 * 1024;

/// VmRSS of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `kB` figure of `/proc/PID/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("a {field} line in /proc/{pid}/status"))
}

/// A process's peak resident memory from now on: the kernel's high-water
/// mark (VmHWM), reset to the current resident size when this starts
/// (`clear_refs` 5; the tests run as root). Exact, where sampling could
/// miss a short peak.
struct RssPeak {
    pid: u32,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .expect("reset the peak resident size (/proc/PID/clear_refs; needs root)");
        RssPeak { pid }
    }

    fn peak_kib(&self) -> u64 {
        status_kib(self.pid, "VmHWM:")
    }
}

// ---- an origin that holds answers until the test lets them go --------------

/// Holds the origin's answers to `/slow...` until the test opens it, and
/// counts the requests that arrived at it.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<AtomicBool>,
    arrived: Arc<AtomicUsize>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Called by the origin: counts the arrival, then waits (at most
    /// [`WAIT`]) for the test to open the gate.
    fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        wait_until(|| self.open.load(Ordering::SeqCst));
    }

    fn wait_arrived(&self, n: usize) -> bool {
        wait_until(|| self.arrived.load(Ordering::SeqCst) >= n)
    }
}

/// An origin answering 200 `ok` (with X-Target), holding `/slow...` at `gate`.
fn gated_origin(gate: &Gate) -> Origin {
    let gate = gate.clone();
    Origin::start(move |s| {
        if s.target.starts_with("/slow") {
            gate.pass();
        }
        Reply::Length(200, vec![format!("X-Target: {}", s.target)], b"ok".to_vec())
    })
}

/// Fields that must never appear in an HTTP/2 message (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

// ---- 1, 2: curl over TLS and h2c; ALPN ------------------------------------------

#[test]
fn curl_gets_h2_by_alpn_over_tls_and_by_prior_knowledge_on_h2c() {
    ringway_tests::on_both_drivers(|env| {
        let origin = Origin::echo();
        let rig = Rig::start(
            &origin,
            Opts {
                tls: true,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
        );
        let r = rig.curl_tls("/over-tls?x=1", &["--http2"]);
        assert_eq!(
            (r.status, r.version.as_str(), r.body.as_slice()),
            (200, "2", &b"ok"[..]),
            "{env:?} {}",
            r.dump
        );
        assert_eq!(r.header("x-target"), Some("/over-tls?x=1"));
        let r = rig.curl_h2c("/cleartext", &["-H", "X-Extra: kept"]);
        assert_eq!((r.status, r.version.as_str()), (200, "2"), "{}", r.dump);
        for (k, _) in &r.headers {
            assert!(
                !CONNECTION_SPECIFIC.contains(&k.as_str()),
                "{k} in an HTTP/2 response: {}",
                r.dump
            );
        }

        // The origin saw two HTTP/1.1 requests, Host taken from :authority.
        let seen = origin.seen();
        assert_eq!(seen.len(), 2, "{seen:#?}");
        let tls_port = rig.tls.unwrap().port();
        assert_eq!(seen[0].version, 1);
        assert_eq!(
            (seen[0].method.as_str(), seen[0].target.as_str()),
            ("GET", "/over-tls?x=1")
        );
        let want = format!("site.test:{tls_port}");
        assert_eq!(seen[0].header("host"), Some(want.as_str()));
        assert_eq!(seen[0].headers_named("host").len(), 1);
        assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
        assert_eq!(seen[1].version, 1);
        let want = format!("127.0.0.1:{}", rig.h2c.port());
        assert_eq!(seen[1].header("host"), Some(want.as_str()));
        assert_eq!(seen[1].header("x-forwarded-proto"), Some("http"));
        assert_eq!(seen[1].header("x-extra"), Some("kept"));
        for s in &seen {
            assert!(
                s.headers.iter().all(|(k, _)| !k.starts_with(':')),
                "a pseudo-header went upstream: {s:?}"
            );
        }
    });
}

#[test]
fn alpn_falls_back_to_http1_and_a_listener_can_offer_http1_only() {
    let origin = Origin::echo();
    let rig = Rig::start(
        &origin,
        Opts {
            tls: true,
            ..Default::default()
        },
    );
    let r = rig.curl_tls("/old", &["--http1.1"]);
    assert_eq!((r.status, r.version.as_str()), (200, "1.1"), "{}", r.dump);
    // A client offering only http/1.1 (the test's rustls client) negotiates it.
    let ca = rig.ca.as_ref().unwrap();
    let config = ringway_tests::pki::client_config(ca, None);
    let mut t = ringway_tests::pki::connect(rig.tls.unwrap(), &config, "site.test").unwrap();
    assert_eq!(t.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    t.write_all(b"GET /rustls HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .unwrap();
    t.flush().unwrap();
    let r1 = read_response(&mut t, &mut Vec::new(), false).expect("a response");
    assert_eq!((r1.status, r1.version), (200, 1));

    // A listener configured for HTTP/1.1 only: curl asking for h2 gets 1.1.
    let only1 = Rig::start(
        &origin,
        Opts {
            tls: true,
            alpn: Some("[\"http/1.1\"]"),
            ..Default::default()
        },
    );
    let r = only1.curl_tls("/only1", &["--http2"]);
    assert_eq!((r.status, r.version.as_str()), (200, "1.1"), "{}", r.dump);
    // And the default listener gives h2 to the same request.
    let r = rig.curl_tls("/default", &["--http2"]);
    assert_eq!((r.status, r.version.as_str()), (200, "2"), "{}", r.dump);
    assert_eq!(origin.seen().len(), 4);
}

// ---- 3: nghttp, 100 streams on one connection -----------------------------

#[test]
fn nghttp_gets_100_concurrent_streams_served_on_one_connection() {
    let origin = Origin::echo();
    let rig = Rig::start(&origin, Opts::default());
    let url = format!("http://127.0.0.1:{}/many", rig.h2c.port());
    let out = Command::new("nghttp")
        .args(["-n", "-v", "-m", "100", &url])
        .stdin(Stdio::null())
        .output()
        .expect("run nghttp (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nghttp: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // `[ 0.003] recv (stream_id=13) :status: 200`, once per stream.
    let mut ok_streams: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" recv (stream_id=") && l.ends_with(":status: 200"))
        .filter_map(|l| l.split("stream_id=").nth(1)?.split(')').next())
        .collect();
    ok_streams.sort_unstable();
    ok_streams.dedup();
    assert_eq!(ok_streams.len(), 100, "{text}");
    // One connection: nghttp sent its preface (and SETTINGS) once.
    let hellos = text
        .lines()
        .filter(|l| l.contains("send SETTINGS frame <") && l.contains("flags=0x00"))
        .count();
    assert_eq!(hellos, 1, "{text}");
    let seen = origin.quiet();
    assert_eq!(seen.len(), 100);
    assert!(seen.iter().all(|s| s.target == "/many" && s.version == 1));
}

// ---- 4: HTTP/1.1 and HTTP/2 on the h2c port ----------------------------------

#[test]
fn the_h2c_port_serves_pipelined_http1_and_prior_knowledge_h2() {
    let origin = Origin::echo();
    let rig = Rig::start(&origin, Opts::default());
    // Two pipelined HTTP/1.1 requests in one write.
    let mut s = client::connect(rig.h2c);
    s.write_all(b"GET /p1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p2 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let r1 = read_response(&mut s, &mut buf, false).expect("first response");
    let r2 = read_response(&mut s, &mut buf, false).expect("second response");
    assert_eq!(
        (r1.status, r1.version, r1.header("x-target")),
        (200, 1, Some("/p1"))
    );
    assert_eq!(
        (r2.status, r2.version, r2.header("x-target")),
        (200, 1, Some("/p2"))
    );
    // A whole request shorter than the 24-byte preface is answered, not
    // held waiting for bytes that will never come.
    let short = send_raw(rig.h2c, b"GET / HTTP/1.0\r\n\r\n");
    assert!(short.status >= 200, "{short:?}");
    // HTTP/2 with prior knowledge on the same port.
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.get("/p3");
    let st = h.finish(id);
    assert_eq!(
        (st.status(), st.body.as_slice()),
        (Some(200), &b"ok"[..]),
        "{}",
        h.describe()
    );
    // `Upgrade: h2c` is still not taken up: curl asking for it gets HTTP/1.1.
    let url = format!("http://127.0.0.1:{}/upgrade", rig.h2c.port());
    let r = curl(&rig.dir.0, &["--http2", &url]);
    assert_eq!((r.status, r.version.as_str()), (200, "1.1"), "{}", r.dump);
    let targets: Vec<String> = origin.quiet().into_iter().map(|s| s.target).collect();
    for t in ["/p1", "/p2", "/p3", "/upgrade"] {
        assert!(targets.iter().any(|x| x == t), "{t} not in {targets:?}");
    }
}

// ---- 5: policies per stream -------------------------------------------------------

#[test]
fn policies_apply_to_each_h2_stream() {
    let origin = Origin::echo();
    let routes = r#"[[usage_plan]]
name = "roomy"
rate = 1000
burst = 1000

[[api_key]]
name = "client-a"
value = "k-123"
plan = "roomy"

[[route]]
path = "/key/{proxy+}"
upstream = "app"
[route.api_key]
source = "header:x-api-key"

[[route]]
path = "/cors/{proxy+}"
upstream = "app"
[route.cors]
allow_origins = ["https://app.example.com"]
allow_methods = ["GET", "POST"]

[[route]]
path = "/throttled"
upstream = "app"
[route.throttle]
rate = 1
burst = 2
key = "route"

[[route]]
path = "/valid"
upstream = "app"
[route.validate]
required_headers = ["x-tenant"]
"#;
    let rig = Rig::start(
        &origin,
        Opts {
            routes: Some(routes.to_string()),
            ..Default::default()
        },
    );
    // All on one connection: a refusal ends its stream, not the connection.
    let mut h = H2::handshake(rig.h2c, &[]);
    let ask = |h: &mut H2, method: &str, path: &str, fields: &[(&str, &str)]| {
        let id = h.request(method, path, fields, None);
        h.finish(id)
    };
    let st = ask(&mut h, "GET", "/key/a", &[]);
    assert_eq!(st.status(), Some(403), "{}", h.describe());
    let st = ask(&mut h, "GET", "/key/a", &[("x-api-key", "k-999")]);
    assert_eq!(st.status(), Some(403));
    let st = ask(&mut h, "GET", "/key/a", &[("x-api-key", "k-123")]);
    assert_eq!(st.status(), Some(200));

    let pre = ask(
        &mut h,
        "OPTIONS",
        "/cors/a",
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
        ],
    );
    assert_eq!(pre.status(), Some(204), "{pre:?}");
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let st = ask(
        &mut h,
        "GET",
        "/cors/a",
        &[("origin", "https://app.example.com")],
    );
    assert_eq!(st.status(), Some(200));
    assert_eq!(
        st.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    // Three streams at once against a burst of 2: two pass, one gets 429.
    let ids: Vec<u32> = (0..3).map(|_| h.next_id()).collect();
    let mut out = Vec::new();
    for id in &ids {
        out.extend_from_slice(&h2raw::headers(
            *id,
            &h2raw::request("GET", "/throttled", &[]),
            true,
        ));
    }
    h.send(&out).unwrap();
    let mut statuses: Vec<u16> = ids
        .iter()
        .map(|id| h.finish(*id).status().unwrap_or(0))
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 429], "{}", h.describe());

    let st = ask(&mut h, "GET", "/valid", &[]);
    assert_eq!(st.status(), Some(400));
    let st = ask(&mut h, "GET", "/valid", &[("x-tenant", "t")]);
    assert_eq!(st.status(), Some(200));

    // curl with the key too.
    let r = rig.curl_h2c("/key/b", &["-H", "x-api-key: k-123"]);
    assert_eq!((r.status, r.version.as_str()), (200, "2"));

    // Only the admitted requests reached the upstream.
    let mut targets: Vec<String> = origin.quiet().into_iter().map(|s| s.target).collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "/cors/a",
            "/key/a",
            "/key/b",
            "/throttled",
            "/throttled",
            "/valid"
        ]
    );
}

// ---- request mapping and malformed requests ----------------------------------

#[test]
fn h2_requests_map_onto_http1_requests_upstream() {
    let origin = Origin::echo();
    let rig = Rig::start(&origin, Opts::default());
    let mut h = H2::handshake(rig.h2c, &[]);
    // Cookie crumbs are joined, `te: trailers` is allowed.
    let id = h.request(
        "GET",
        "/m?q=1",
        &[
            ("cookie", "a=1"),
            ("x-one", "1"),
            ("cookie", "b=2"),
            ("te", "trailers"),
        ],
        None,
    );
    assert_eq!(h.finish(id).status(), Some(200), "{}", h.describe());
    // A body without content-length, and one with it.
    let body = pattern(40_000, 4);
    let id = h.request("POST", "/nolen", &[], Some(&body));
    assert_eq!(h.finish(id).status(), Some(200), "{}", h.describe());
    let len = body.len().to_string();
    let id = h.request("PUT", "/len", &[("content-length", &len)], Some(&body));
    assert_eq!(h.finish(id).status(), Some(200), "{}", h.describe());

    let seen = origin.quiet();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let m = &seen[0];
    assert_eq!(
        (m.method.as_str(), m.target.as_str(), m.version),
        ("GET", "/m?q=1", 1)
    );
    assert_eq!(m.headers_named("cookie"), ["a=1; b=2"], "{m:?}");
    assert_eq!(m.header("host"), Some("h2.test"));
    assert_eq!(m.header("x-one"), Some("1"));
    for s in &seen[1..] {
        assert_eq!(sha256(&s.body), sha256(&body), "{} {}", s.method, s.target);
    }
    assert_eq!(seen[2].header("content-length"), Some(len.as_str()));
}

#[test]
fn malformed_h2_requests_are_refused_and_never_forwarded() {
    let origin = Origin::echo();
    let rig = Rig::start(&origin, Opts::default());
    let base = |path: &str| -> Vec<(String, String)> {
        [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "h2.test"),
            (":path", path),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let with = |path: &str, k: &str, v: &str| {
        let mut f = base(path);
        f.push((k.into(), v.into()));
        f
    };
    let mut cases: Vec<(&str, Vec<(String, String)>)> = Vec::new();
    for (i, name) in CONNECTION_SPECIFIC.iter().enumerate() {
        let value = if *name == "transfer-encoding" {
            "chunked"
        } else {
            "keep-alive"
        };
        cases.push((name, with(&format!("/bad/cs{i}"), name, value)));
    }
    cases.push(("te other than trailers", with("/bad/te", "te", "gzip")));
    cases.push((
        "CRLF in a value",
        with("/bad/crlf", "x-a", "1\r\nx-injected: 1"),
    ));
    cases.push(("LF in a value", with("/bad/lf", "x-a", "1\nx-injected: 1")));
    cases.push(("NUL in a value", with("/bad/nul", "x-a", "1\0")));
    cases.push(("an uppercase name", with("/bad/upper", "X-Upper", "1")));
    cases.push(("a space in a name", with("/bad/space", "x a", "1")));
    cases.push(("a colon in a name", with("/bad/colon", "x:a", "1")));
    cases.push(("an unknown pseudo-header", with("/bad/pseudo", ":foo", "1")));
    cases.push((
        "a response pseudo-header",
        with("/bad/status", ":status", "200"),
    ));
    cases.push((
        "no :path",
        base("/x")
            .into_iter()
            .filter(|(k, _)| k != ":path")
            .collect(),
    ));
    cases.push(("no :method", {
        base("/bad/nomethod")
            .into_iter()
            .filter(|(k, _)| k != ":method")
            .collect()
    }));
    cases.push(("two :path", with("/bad/two", ":path", "/bad/two-b")));
    cases.push(("a pseudo-header after a field", {
        let mut f = base("/x");
        let path = f.pop().unwrap();
        f.push(("x-a".into(), "1".into()));
        f.push((path.0, "/bad/order".into()));
        f
    }));
    cases.push((
        "a space in :path",
        base("/bad/sp HTTP/1.1\r\nX-Injected: 1\r\nX:"),
    ));
    cases.push(("an empty :path", base("")));
    let mut outcomes = Vec::new();
    for (what, fields) in &cases {
        let mut h = H2::handshake(rig.h2c, &[]);
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        h.send(&h2raw::headers(1, &h2raw::block(&pairs), true))
            .unwrap();
        h.until(|h| {
            h.streams.get(&1).is_some_and(|s| s.done()) || !h.goaways.is_empty() || h.closed
        });
        let st = h.streams.get(&1).cloned().unwrap_or_default();
        let refused = st.reset == Some(code::PROTOCOL_ERROR)
            || st.status() == Some(400)
            || h.goaways.iter().any(|g| g.1 == code::PROTOCOL_ERROR);
        outcomes.push((what.to_string(), refused, h.describe()));
    }
    // Bodies that disagree with content-length (RFC 9113 §8.1.1), one
    // carrying a request to smuggle past an HTTP/1.1 upstream.
    for (what, path, len, body) in [
        (
            "a body longer than content-length",
            "/bad/long",
            "3",
            &b"abcGET /smuggled HTTP/1.1\r\nHost: h2.test\r\n\r\n"[..],
        ),
        (
            "a body shorter than content-length",
            "/bad/short",
            "100",
            &b"abc"[..],
        ),
    ] {
        let mut h = H2::handshake(rig.h2c, &[]);
        let mut out = h2raw::headers(
            1,
            &h2raw::request("POST", path, &[("content-length", len)]),
            false,
        );
        out.extend_from_slice(&h2raw::data(1, body, true));
        h.send(&out).unwrap();
        h.until(|h| h.streams.get(&1).is_some_and(|s| s.done()) || h.closed);
        let st = h.streams.get(&1).cloned().unwrap_or_default();
        let refused = st.reset == Some(code::PROTOCOL_ERROR) || st.status() == Some(400);
        outcomes.push((what.to_string(), refused, h.describe()));
    }
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|(_, refused, _)| !refused)
        .map(|(what, _, d)| format!("{what}: {d}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "not refused (RST_STREAM PROTOCOL_ERROR or 400):\n{}",
        wrong.join("\n")
    );
    // A good request still goes through.
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.get("/good");
    assert_eq!(h.finish(id).status(), Some(200));
    let seen = origin.quiet();
    let leaked: Vec<&ringway_tests::Seen> = seen
        .iter()
        .filter(|s| {
            s.target.starts_with("/bad")
                || s.target == "/smuggled"
                || s.header("x-injected").is_some()
                || s.target.contains(' ')
        })
        .collect();
    assert!(leaked.is_empty(), "forwarded: {leaked:#?}");
    assert!(seen.iter().any(|s| s.target == "/good"));
}

// ---- 6: bodies and flow control ------------------------------------------------

#[test]
fn big_uploads_and_downloads_arrive_intact() {
    const DOWN: u64 = 64 * 1024 * 1024;
    let origin = Origin::start(|s| match s.target.as_str() {
        "/down" => Reply::Stream {
            status: 200,
            len: DOWN,
            seed: 7,
            written: Arc::default(),
        },
        "/down-small" => Reply::Stream {
            status: 200,
            len: 8 << 20,
            seed: 8,
            written: Arc::default(),
        },
        _ => Reply::Length(
            200,
            vec![format!("X-Body-Sha256: {}", sha256(&s.body))],
            b"ok".to_vec(),
        ),
    });
    let rig = Rig::start(
        &origin,
        Opts {
            tls: true,
            ..Default::default()
        },
    );
    let up = pattern(8 << 20, 11);
    let file = rig.dir.0.join("up.bin");
    std::fs::write(&file, &up).unwrap();
    let at_file = format!("@{}", file.display());
    // With a length (curl sends content-length) ...
    let r = rig.curl_h2c("/up", &["--data-binary", &at_file]);
    assert_eq!((r.status, r.version.as_str()), (200, "2"), "{}", r.dump);
    assert_eq!(r.header("x-body-sha256"), Some(sha256(&up).as_str()));
    // ... and without (read from stdin as it comes).
    let url = format!("http://127.0.0.1:{}/up-nolen", rig.h2c.port());
    let r = curl_with_stdin(
        &rig.dir.0,
        &["--http2-prior-knowledge", "-T", "-", &url],
        Some(&file),
    );
    assert_eq!((r.status, r.version.as_str()), (200, "2"), "{}", r.dump);
    assert_eq!(r.header("x-body-sha256"), Some(sha256(&up).as_str()));
    // Downloads, over h2c and over TLS.
    let r = rig.curl_h2c("/down", &[]);
    assert_eq!((r.status, r.version.as_str()), (200, "2"), "{}", r.dump);
    assert_eq!(r.body.len() as u64, DOWN);
    assert_eq!(sha256(&r.body), sha256(&pattern(DOWN as usize, 7)));
    let r = rig.curl_tls("/down-small", &["--http2"]);
    assert_eq!((r.status, r.version.as_str()), (200, "2"), "{}", r.dump);
    assert_eq!(sha256(&r.body), sha256(&pattern(8 << 20, 8)));
    let seen = origin.seen();
    let ups: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with("/up"))
        .collect();
    assert_eq!(ups.len(), 2);
    assert!(ups.iter().all(|s| s.body.len() == up.len()));
}

/// An origin with a 512 MiB streamed body at `/huge` and `ok` elsewhere;
/// the counter says how much of the body it has written.
/// ringway's built-in origin (`ringway upstream`): it reads request
/// bodies to their end without keeping them. Killed on drop.
struct Sink {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Sink {
    fn start() -> Sink {
        let mut child = Command::new(ringway_tests::gateway::binary("ringway"))
            .args(["upstream", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("origin listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("ringway upstream did not say where it listens")
            .parse()
            .unwrap();
        Sink { child, addr }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl with prior knowledge, the body thrown away; `%{http_code}
/// %{http_version} %{size_download} %{size_upload}`.
fn curl_discard(url: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "300",
            "--http2-prior-knowledge",
            "-o",
            "/dev/null",
        ])
        .args([
            "-w",
            "%{http_code} %{http_version} %{size_download} %{size_upload}",
        ])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run curl (Debian package curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_gibibyte_each_way_streams_through_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let origin = Origin::start(move |s| match s.target.as_str() {
        "/gib" => Reply::Stream {
            status: 200,
            len: GIB,
            seed: 5,
            written: w.clone(),
        },
        _ => Reply::Length(200, vec![], b"ok".to_vec()),
    });
    let sink = Sink::start();
    let routes = format!(
        "{CATCH_ALL}\n[[upstream]]\nname = \"sink\"\ntargets = [\"{}\"]\n\n[[route]]\npath = \"/sink\"\nupstream = \"sink\"\n",
        sink.addr
    );
    let mut rig = Rig::start(
        &origin,
        Opts {
            routes: Some(routes),
            ..Default::default()
        },
    );
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    let base = format!("http://127.0.0.1:{}", rig.h2c.port());
    let down = curl_discard(&format!("{base}/gib"), &[]);
    assert_eq!(down[..3], ["200", "2", &GIB.to_string()], "{down:?}");
    // The origin counts a chunk once its write returns, which can be after
    // curl has read the chunk and exited: wait for the count.
    assert!(
        wait_until(|| written.load(Ordering::SeqCst) == GIB),
        "the origin wrote {} bytes",
        written.load(Ordering::SeqCst)
    );
    // A sparse file: a gibibyte of zeros that takes no disk.
    let file = rig.dir.0.join("gib.bin");
    std::fs::File::create(&file).unwrap().set_len(GIB).unwrap();
    let bytes_in = || rig.metric("ringway_bytes_total", &[("direction", "in")]);
    let before = bytes_in();
    let up = curl_discard(
        &format!("{base}/sink"),
        &["-T", &file.display().to_string()],
    );
    assert_eq!(
        (up[0].as_str(), up[1].as_str(), up[3].as_str()),
        ("200", "2", GIB.to_string().as_str()),
        "{up:?}"
    );
    assert!(
        wait_until(|| bytes_in() - before >= GIB as f64),
        "the gateway counted {} bytes in",
        bytes_in() - before
    );
    rig.assert_unharmed(baseline, &peak, "a gibibyte down and one up");
}

fn huge_origin() -> (Origin, Arc<AtomicU64>) {
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let origin = Origin::start(move |s| match s.target.as_str() {
        "/huge" => Reply::Stream {
            status: 200,
            len: 512 << 20,
            seed: 3,
            written: w.clone(),
        },
        _ => Reply::Length(200, vec![], b"ok".to_vec()),
    });
    (origin, written)
}

/// Waits until the upstream connection that carried `target` is closed by the gateway.
fn upstream_given_up(origin: &Origin, target: &str) -> bool {
    assert!(
        origin.wait_for_target(target),
        "{target} never reached the origin"
    );
    let conn = origin
        .seen()
        .iter()
        .find(|s| s.target == target)
        .map(|s| s.conn)
        .unwrap();
    origin.wait_closed(conn)
}

#[test]
fn a_window_never_opened_holds_little_memory_and_the_stream_is_reset_after_body_idle() {
    let (origin, written) = huge_origin();
    let mut rig = Rig::start(
        &origin,
        Opts {
            timeouts: "body_idle = \"1s\"",
            ..Default::default()
        },
    );
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    let mut h = H2::handshake(rig.h2c, &[(setting::INITIAL_WINDOW_SIZE, 0)]);
    let id = h.get("/huge");
    let st = h.finish(id);
    assert!(
        st.reset.is_some() && !st.ended,
        "the stream was not reset: {}",
        h.describe()
    );
    assert!(
        st.body.is_empty(),
        "DATA sent into a zero window: {}",
        h.describe()
    );
    assert!(
        upstream_given_up(&origin, "/huge"),
        "the upstream connection stayed open"
    );
    let pulled = written.load(Ordering::SeqCst);
    assert!(
        pulled < 64 << 20,
        "the gateway pulled {pulled} bytes from the upstream for a client that took none"
    );
    // The connection itself is still good.
    if !h.closed && h.goaways.is_empty() {
        let id = h.get("/small");
        h.send(&h2raw::window_update(id, 1 << 20)).unwrap();
        assert_eq!(h.finish(id).status(), Some(200), "{}", h.describe());
    }
    rig.assert_unharmed(baseline, &peak, "a window never opened");
}

#[test]
fn a_client_that_never_reads_holds_little_memory_and_the_upstream_is_given_up() {
    let (origin, written) = huge_origin();
    let mut rig = Rig::start(
        &origin,
        Opts {
            timeouts: "body_idle = \"1s\"",
            ..Default::default()
        },
    );
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    // Windows opened all the way, then the socket is never read again.
    let mut h = H2::handshake(rig.h2c, &[(setting::INITIAL_WINDOW_SIZE, 0x7fff_ffff)]);
    h.send(&h2raw::window_update(0, 0x7fff_ffff - 65_535))
        .unwrap();
    h.get("/huge");
    // The gateway can push only what the sockets' buffers hold; once it
    // has made no progress for body_idle, it gives the upstream up.
    let gave_up = upstream_given_up(&origin, "/huge");
    let pulled = written.load(Ordering::SeqCst);
    assert!(
        pulled < 64 << 20,
        "the gateway pulled {pulled} bytes from the upstream for a client that reads nothing"
    );
    assert!(
        gave_up,
        "the upstream connection stayed open ({pulled} bytes pulled)"
    );
    drop(h);
    rig.assert_unharmed(baseline, &peak, "a client that never reads");
}

// ---- 7: trailers and early hints ----------------------------------------------------

#[test]
fn upstream_trailers_become_h2_trailers_and_early_hints_are_relayed() {
    let origin = Origin::start(|s| {
        match s.target.as_str() {
        "/trailers" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc123\r\n\r\n"
                .to_vec(),
        ),
        "/hints" => Reply::Raw(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec(),
        ),
        _ => Reply::Length(200, vec![], b"ok".to_vec()),
    }
    });
    let rig = Rig::start(&origin, Opts::default());
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.request("GET", "/trailers", &[("te", "trailers")], None);
    let st = h.finish(id);
    assert_eq!(st.status(), Some(200), "{}", h.describe());
    assert_eq!(st.body, b"hello world");
    let trailers = st
        .trailers
        .clone()
        .unwrap_or_else(|| panic!("no trailers: {}", h.describe()));
    assert_eq!(h2raw::field(&trailers, "x-checksum"), Some("abc123"));
    assert!(st.ended);
    for f in CONNECTION_SPECIFIC {
        assert_eq!(
            st.header(f),
            None,
            "{f} in an HTTP/2 response head: {:?}",
            st.head
        );
    }

    let id = h.get("/hints");
    let st = h.finish(id);
    assert_eq!(st.informational.len(), 1, "{}", h.describe());
    let hint = &st.informational[0];
    assert_eq!(h2raw::field(hint, ":status"), Some("103"));
    assert_eq!(
        h2raw::field(hint, "link"),
        Some("</style.css>; rel=preload")
    );
    assert_eq!((st.status(), st.body.as_slice()), (Some(200), &b"ok"[..]));
    // curl sees the interim head too.
    let r = rig.curl_h2c("/hints", &[]);
    assert!(r.dump.contains("HTTP/2 103"), "{}", r.dump);
    assert_eq!(r.status, 200);
}

// ---- 8: attacks ----------------------------------------------------------------------

#[test]
fn rapid_reset_gets_goaway_enhance_your_calm() {
    let origin = Origin::echo();
    let mut rig = Rig::start(
        &origin,
        Opts {
            h2: "max_resets_per_second = 100",
            ..Default::default()
        },
    );
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    let mut h = H2::handshake(rig.h2c, &[]);
    let block = h2raw::request("GET", "/rr", &[]);
    let (end, _) = h.flood(1000, 25, |i| {
        let id = 2 * i as u32 + 1;
        let mut pair = h2raw::headers(id, &block, true);
        pair.extend_from_slice(&h2raw::rst_stream(id, code::CANCEL));
        pair
    });
    assert_ne!(end, FloodEnd::Stalled, "{}", h.describe());
    let g = h.goaway_or_close();
    assert_eq!(
        g.map(|g| g.1),
        Some(code::ENHANCE_YOUR_CALM),
        "flood ended {end:?}: {}",
        h.describe()
    );
    assert!(
        wait_until(|| rig.metric("ringway_h2_resets_total", &[("direction", "received")]) >= 100.0),
        "{:?}",
        rig.metrics()
            .iter()
            .filter(|s| s.name.starts_with("ringway_h2"))
            .collect::<Vec<_>>()
    );
    assert!(rig.metric("ringway_h2_goaways_sent_total", &[]) >= 1.0);
    rig.assert_unharmed(baseline, &peak, "a rapid reset");
}

#[test]
fn a_continuation_flood_is_cut_off() {
    let origin = Origin::echo();
    let mut rig = Rig::start(&origin, Opts::default());
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    let mut h = H2::handshake(rig.h2c, &[]);
    // HEADERS without END_HEADERS, then CONTINUATION frames of 16,000 bytes
    // of valid fields, never ending: up to 32 MiB.
    let first = h2raw::request("GET", "/cf", &[]);
    h.send(&h2raw::frame(kind::HEADERS, flag::END_STREAM, 1, &first))
        .unwrap();
    let mut piece = Vec::new();
    while piece.len() < 16_000 {
        h2raw::literal(&mut piece, b"x-fill", &[b'a'; 100]);
    }
    let (end, written) = h.flood(2048, 16, |_| h2raw::continuation(1, &piece, false));
    assert!(
        matches!(end, FloodEnd::GoAway | FloodEnd::Closed),
        "the gateway took {written} bytes of one header block ({end:?}): {}",
        h.describe()
    );
    h.goaway_or_close();
    assert!(
        !h.goaways.is_empty() || h.closed,
        "neither GOAWAY nor close: {}",
        h.describe()
    );
    assert!(origin.quiet().iter().all(|s| s.target != "/cf"));
    rig.assert_unharmed(baseline, &peak, "a CONTINUATION flood");
}

#[test]
fn an_hpack_bomb_is_refused_without_harm() {
    let origin = Origin::echo();
    let mut rig = Rig::start(&origin, Opts::default());
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    let mut h = H2::handshake(rig.h2c, &[]);
    // One entry as big as the server's table allows, then ~11,000
    // references to it: ~15 KB on the wire, ~45 MB decoded.
    let table = h.server_setting(setting::HEADER_TABLE_SIZE).unwrap_or(4096) as usize;
    let value_len = table.saturating_sub(32 + 6 + 8).max(1);
    let mut b = h2raw::request("GET", "/bomb", &[]);
    h2raw::literal_indexed(&mut b, b"x-bomb", &vec![b'b'; value_len]);
    while b.len() < 15_000 {
        h2raw::indexed(&mut b, 62);
    }
    h.send(&h2raw::headers(1, &b, true)).unwrap();
    h.until(|h| h.streams.get(&1).is_some_and(|s| s.done()) || !h.goaways.is_empty() || h.closed);
    let st = h.streams.get(&1).cloned().unwrap_or_default();
    assert!(
        st.status() == Some(431) || st.reset.is_some() || !h.goaways.is_empty() || h.closed,
        "no refusal: {}",
        h.describe()
    );
    assert_ne!(st.status(), Some(200), "{}", h.describe());
    // ringway answers 431 and ends the connection (GOAWAY ENHANCE_YOUR_CALM).
    h.goaway_or_close();
    assert!(!h.goaways.is_empty() || h.closed, "{}", h.describe());
    assert!(origin.quiet().iter().all(|s| s.target != "/bomb"));
    rig.assert_unharmed(baseline, &peak, "an HPACK bomb");
}

#[test]
fn control_frame_floods_get_goaway_enhance_your_calm() {
    let origin = Origin::echo();
    let mut rig = Rig::start(
        &origin,
        Opts {
            h2: "max_control_frames_per_second = 1000",
            ..Default::default()
        },
    );
    let baseline = rig.warm_baseline();
    let peak = RssPeak::start(rig.pid());
    type Make = fn(usize) -> Vec<u8>;
    let cases: [(&str, Make); 5] = [
        ("SETTINGS", |_| h2raw::settings(&[])),
        ("PING", |i| h2raw::ping(i as u64)),
        ("PRIORITY", |i| h2raw::priority(2 * i as u32 + 101, 0)),
        ("WINDOW_UPDATE", |_| h2raw::window_update(0, 1)),
        ("empty DATA", |_| h2raw::data(1, &[], false)),
    ];
    let mut wrong = Vec::new();
    for (what, make) in cases {
        let mut h = H2::handshake(rig.h2c, &[]);
        if what == "empty DATA" {
            h.send(&h2raw::headers(
                1,
                &h2raw::request("POST", "/sink", &[]),
                false,
            ))
            .unwrap();
        }
        let (end, _) = h.flood(5000, 100, make);
        let g = h.goaway_or_close();
        if end == FloodEnd::Stalled || g.map(|g| g.1) != Some(code::ENHANCE_YOUR_CALM) {
            wrong.push(format!("{what}: flood {end:?}, {}", h.describe()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(rig.metric("ringway_h2_goaways_sent_total", &[]) >= 5.0);
    rig.assert_unharmed(baseline, &peak, "control frame floods");
}

#[test]
fn streams_past_max_concurrent_streams_are_refused() {
    let gate = Gate::default();
    let origin = gated_origin(&gate);
    let rig = Rig::start(
        &origin,
        Opts {
            h2: "max_concurrent_streams = 2",
            ..Default::default()
        },
    );
    let mut h = H2::handshake(rig.h2c, &[]);
    assert_eq!(h.server_setting(setting::MAX_CONCURRENT_STREAMS), Some(2));
    let a = h.get("/slow/a");
    let b = h.get("/slow/b");
    assert!(
        gate.wait_arrived(2),
        "the two streams did not reach the origin"
    );
    let c = h.get("/slow/c");
    let st = h.finish(c);
    assert_eq!(st.reset, Some(code::REFUSED_STREAM), "{}", h.describe());
    gate.open();
    for id in [a, b] {
        let st = h.finish(id);
        assert_eq!((st.status(), st.body.as_slice()), (Some(200), &b"ok"[..]));
    }
    let d = h.get("/after");
    assert_eq!(h.finish(d).status(), Some(200));
    assert!(origin.quiet().iter().all(|s| s.target != "/slow/c"));
    assert_eq!(gate.arrived.load(Ordering::SeqCst), 2);
}

// ---- 9: GOAWAY on SIGTERM and on idle ---------------------------------------------------

/// After a graceful GOAWAY: stream `id`, held at `gate`, is still open;
/// let go, it is answered in full, and then the gateway closes the connection.
fn held_stream_finishes_then_the_connection_closes(h: &mut H2, gate: &Gate, id: u32) {
    assert!(
        !h.streams.get(&id).is_some_and(|s| s.done()),
        "the stream ended before its answer: {}",
        h.describe()
    );
    gate.open();
    let st = h.finish(id);
    assert_eq!(
        (st.status(), st.body.as_slice()),
        (Some(200), &b"ok"[..]),
        "{}",
        h.describe()
    );
    assert!(
        h.until(|h| h.closed),
        "the connection stayed open after its last stream: {}",
        h.describe()
    );
}

#[test]
fn sigterm_sends_goaway_and_the_in_flight_stream_finishes() {
    let gate = Gate::default();
    let origin = gated_origin(&gate);
    let mut rig = Rig::start(&origin, Opts::default());
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.get("/slow/drain");
    assert!(gate.wait_arrived(1));
    rig.gw.signal(libc::SIGTERM);
    // A GOAWAY that names the in-flight stream as processed.
    let final_goaway = h.until(|h| h.goaways.iter().any(|g| g.0 < 0x7fff_ffff));
    assert!(final_goaway, "no GOAWAY after SIGTERM: {}", h.describe());
    assert!(
        h.goaways
            .iter()
            .all(|&(last, c)| last >= id && c == code::NO_ERROR),
        "{:?}",
        h.goaways
    );
    // A stream opened after the GOAWAY is not processed.
    let late = h.get("/slow/late");
    held_stream_finishes_then_the_connection_closes(&mut h, &gate, id);
    assert_eq!(rig.gw.wait_exit(WAIT), Some(0), "{:#?}", rig.gw.log());
    assert!(
        h.streams.get(&late).is_none_or(|s| s.status().is_none()),
        "a stream past the GOAWAY was answered: {}",
        h.describe()
    );
    assert!(origin.seen().iter().all(|s| s.target != "/slow/late"));
}

#[test]
fn a_reload_sends_goaway_and_the_in_flight_stream_finishes() {
    let gate = Gate::default();
    let origin = gated_origin(&gate);
    let rig = Rig::start(&origin, Opts::default());
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.get("/slow/reload");
    assert!(gate.wait_arrived(1));
    rig.gw.signal(libc::SIGHUP);
    assert!(rig.gw.wait_for_generation(1), "{:#?}", rig.gw.log());
    assert!(
        h.until(|h| !h.goaways.is_empty()),
        "no GOAWAY after the reload: {}",
        h.describe()
    );
    assert_eq!(h.goaways, vec![(id, code::NO_ERROR)], "{}", h.describe());
    held_stream_finishes_then_the_connection_closes(&mut h, &gate, id);
    // The gateway goes on serving HTTP/2 on new connections, on the new config.
    let mut again = H2::handshake(rig.h2c, &[]);
    let next = again.get("/after-reload");
    assert_eq!(
        again.finish(next).status(),
        Some(200),
        "{}",
        again.describe()
    );
    assert!(again.goaways.is_empty(), "{}", again.describe());
}

#[test]
fn access_log_lines_name_http2() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let log = dir.0.join("access.log");
    let rig = Rig::start(
        &origin,
        Opts {
            routes: Some(format!(
                "{CATCH_ALL}\n[server.access_log]\npath = \"{}\"\nformat = 'combined'\n",
                log.display()
            )),
            ..Default::default()
        },
    );
    assert_eq!(rig.curl_h2c("/logged/h2?x=1", &[]).status, 200);
    assert_eq!(client::get(rig.h2c, "/logged/h1").status, 200);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(wait_until(|| read().lines().count() >= 2), "{}", read());
    let text = read();
    assert!(
        text.contains("\"GET /logged/h2?x=1 HTTP/2.0\" 200 "),
        "{text}"
    );
    assert!(text.contains("\"GET /logged/h1 HTTP/1.1\" 200 "), "{text}");
}

#[test]
fn an_idle_connection_gets_goaway_after_idle_timeout() {
    let origin = Origin::echo();
    let rig = Rig::start(
        &origin,
        Opts {
            h2: "idle_timeout = \"1s\"",
            ..Default::default()
        },
    );
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.get("/before-idle");
    assert_eq!(h.finish(id).status(), Some(200));
    let g = h.goaway_or_close();
    assert_eq!(g, Some((id, code::NO_ERROR)), "{}", h.describe());
    assert!(
        h.until(|h| h.closed),
        "not closed after GOAWAY: {}",
        h.describe()
    );
}

// ---- ringway-load's HTTP/2 client against the gateway (issue #22) ---------------------

#[test]
fn ringway_load_drives_h2_and_h2c_with_exact_counts() {
    let origin = Origin::echo();
    let rig = Rig::start(
        &origin,
        Opts {
            tls: true,
            ..Default::default()
        },
    );
    let tls = rig.tls.expect("TLS listener");
    let cases = [
        (
            "--h2c",
            format!("http://127.0.0.1:{}/load/h2c", rig.h2c.port()),
        ),
        ("--h2", format!("https://127.0.0.1:{}/load/h2", tls.port())),
    ];
    let mut expected = 0;
    for (flag, url) in &cases {
        let json = rig.dir.0.join("report.json");
        let out = Command::new(ringway_tests::gateway::binary("ringway-load"))
            .args([
                flag,
                url.as_str(),
                "-k",
                "-n",
                "500",
                "--streams",
                "10",
                "-c",
                "3",
                "-t",
                "1",
            ])
            .args(["--timeout", "5s", "--quiet", "--json"])
            .arg(&json)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(report["requests"], 500, "{flag}: {report}");
        assert_eq!(report["errors"]["total"], 0, "{flag}: {report}");
        assert_eq!(report["status"]["200"], 500, "{flag}: {report}");
        expected += 500;
        let path = &url[url.find("/load").unwrap()..];
        assert!(
            wait_until(|| origin.seen().iter().filter(|s| s.target == path).count() == 500),
            "{flag}: the origin saw {} requests, e.g. {:?}",
            origin.seen().iter().filter(|s| s.target == path).count(),
            origin.seen().first().map(|s| s.target.clone())
        );
    }
    let h2 = || rig.metric("ringway_requests_by_protocol_total", &[("proto", "h2")]);
    assert!(wait_until(|| h2() == f64::from(expected)), "{}", h2());
}

// ---- 10: metrics -----------------------------------------------------------------------

#[test]
fn metrics_count_h2_requests_by_proto_and_streams_in_flight() {
    let gate = Gate::default();
    let origin = gated_origin(&gate);
    let rig = Rig::start(&origin, Opts::default());
    for i in 0..3 {
        assert_eq!(rig.curl_h2c(&format!("/m{i}"), &[]).status, 200);
    }
    for i in 0..2 {
        assert_eq!(client::get(rig.h2c, &format!("/h{i}")).status, 200);
    }
    let count = |proto: &str| rig.metric("ringway_requests_by_protocol_total", &[("proto", proto)]);
    assert!(
        wait_until(|| count("h2") >= 3.0 && count("h1") >= 2.0),
        "{:?}",
        rig.metrics()
            .iter()
            .filter(|s| s.name == "ringway_requests_by_protocol_total")
            .collect::<Vec<_>>()
    );
    assert_eq!((count("h2"), count("h1")), (3.0, 2.0));
    // A stream held at the origin is in flight until it is answered.
    let mut h = H2::handshake(rig.h2c, &[]);
    let id = h.get("/slow/g");
    assert!(gate.wait_arrived(1));
    let in_flight = || rig.metric("ringway_h2_streams_in_flight", &[]);
    assert!(wait_until(|| in_flight() == 1.0), "{}", in_flight());
    gate.open();
    assert_eq!(h.finish(id).status(), Some(200));
    assert!(wait_until(|| in_flight() == 0.0), "{}", in_flight());
    assert!(wait_until(|| count("h2") == 4.0));
    let names: Vec<String> = rig.metrics().into_iter().map(|s| s.name).collect();
    for name in [
        "ringway_h2_streams_in_flight",
        "ringway_h2_resets_total",
        "ringway_h2_goaways_sent_total",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from /metrics"
        );
    }
}

// ---- config ----------------------------------------------------------------------------

#[test]
fn the_issue_h2_config_checks_and_bad_h2_keys_are_named() {
    let dir = TempDir::new();
    let ca = Ca::new("ca");
    ca.server(&["site.test"]).write(&dir.0, "site");
    let good = r#"[server]
listen = [
  { addr = "127.0.0.1:8443", tls = { cert = "site.pem", key = "site.key" }, alpn = ["h2", "http/1.1"] },
  { addr = "127.0.0.1:8080", h2c = true },
]
[server.h2]
max_concurrent_streams = 128
initial_window = "256KiB"
max_frame_size = "16KiB"
max_header_list = "16KiB"
idle_timeout = "60s"
max_resets_per_second = 100
max_control_frames_per_second = 1000

[[upstream]]
name = "app"
targets = ["127.0.0.1:9"]

[[route]]
path = "/{proxy+}"
upstream = "app"
"#;
    let (code, _, err) = ringway_tests::gateway::check_in(&dir.0, good);
    assert_eq!(code, 0, "{err}");
    for (bad, needle) in [
        (
            good.replace("alpn = [\"h2\", \"http/1.1\"]", "alpn = [\"h3\"]"),
            "alpn",
        ),
        (good.replace("h2c = true", "h2c = \"yes\""), "h2c"),
        (
            good.replace("max_resets_per_second", "max_resets_per_sec"),
            "server.h2",
        ),
        (
            good.replace("initial_window = \"256KiB\"", "initial_window = \"lots\""),
            "initial_window",
        ),
    ] {
        let (code, _, err) = ringway_tests::gateway::check_in(&dir.0, &bad);
        assert_ne!(code, 0, "accepted: {bad}");
        assert!(err.contains(needle), "{needle} not named: {err}");
    }
}
