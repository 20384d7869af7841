//! The proxies under test, each configured the same way: N workers, upstream
//! keep-alive on, access logging off, listening on a free 127.0.0.1 port,
//! with config, pid and log files in a directory of its own.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::idle;
use crate::process::{self, Guard};
use crate::tls::Material;

/// How long a proxy may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle upstream connections each proxy keeps (nginx `keepalive`).
const UPSTREAM_KEEPALIVE: usize = 256;
/// File descriptors kept free for everything that is not a connection.
const FD_RESERVE: u64 = 500;

/// The connection limit configured on nginx and HAProxy: as many as the
/// (already raised) RLIMIT_NOFILE allows.
fn fd_limits() -> (u64, u64) {
    let nofile = crate::setup::nofile_limit().max(2 * FD_RESERVE);
    (nofile, nofile - FD_RESERVE)
}

/// Who serves the load generator in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Ringway,
    Nginx,
    Haproxy,
    /// The load generator straight to the upstream: the ceiling.
    Direct,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Ringway => "ringway",
            Target::Nginx => "nginx",
            Target::Haproxy => "haproxy",
            Target::Direct => "direct",
        }
    }
}

/// Where the proxies' programs are (None: not available).
pub struct Programs {
    pub ringway: PathBuf,
    pub nginx: Option<PathBuf>,
    pub haproxy: Option<PathBuf>,
}

/// A proxy (or the direct path) ready for load.
pub struct Running {
    pub addr: SocketAddr,
    /// ringway's admin listener (`/metrics`, read before and after each run:
    /// TLS handshake failures, panics, spliced bytes). It runs on the
    /// control thread, which a scrape wakes; the workers answer it only
    /// when asked, so the measured run does not pay for it.
    pub admin: Option<SocketAddr>,
    /// None for the direct path.
    pub guard: Option<Guard>,
}

/// A free port on 127.0.0.1 (bound and released; a small race is accepted).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// What a proxy is asked to do besides forwarding: request policies, as
/// configuration each proxy adds to its route, with the header fields every
/// request then carries and the checks that show the policies are live.
/// The default is a plain proxy (the comparison's).
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Added to the run directory's name (`rw-jwt`); empty for none.
    pub label: String,
    /// ringway: top-level tables (`[[usage_plan]]`, `[[api_key]]`).
    pub ringway_tables: String,
    /// ringway: sub-tables of every route (`[route.cors]`, ...).
    pub ringway_route: String,
    /// nginx: directives of the `http` block (`map`, `limit_req_zone`).
    pub nginx_http: String,
    /// nginx: directives of `location /`.
    pub nginx_location: String,
    /// `Name: value` fields sent with every request, the readiness check's included.
    pub fields: Vec<String>,
    /// Requests sent once after start-up, before any load.
    pub checks: Vec<Check>,
    /// When > 0, the load's requests carry `X-Client: k0` … `k{n-1}` in
    /// turn (a `--mix` file of n lines), to spread keyed limits.
    pub spread_keys: usize,
}

/// One request that must get a given answer: proof that a policy is on (or off).
#[derive(Debug, Clone)]
pub struct Check {
    /// What it shows, for the failure message.
    pub what: String,
    /// The request's extra header fields.
    pub fields: Vec<String>,
    pub status: u16,
    /// A response field that must have this value (`None`: must be absent).
    pub field: Option<(String, Option<String>)>,
}

impl Check {
    /// Sends the request to `addr`; an error says what was wrong.
    pub fn verify(&self, addr: SocketAddr) -> Result<()> {
        let answer = idle::get(addr, &self.fields)
            .with_context(|| format!("policy check \"{}\"", self.what))?;
        let mut wrong = Vec::new();
        if answer.status != self.status {
            wrong.push(format!("status {} (want {})", answer.status, self.status));
        }
        if let Some((name, want)) = &self.field {
            let got = answer.field(name);
            if got != want.as_deref() {
                wrong.push(format!("`{name}` is {got:?} (want {want:?})"));
            }
        }
        if !wrong.is_empty() {
            bail!(
                "policy check \"{}\" failed: {}\n{}",
                self.what,
                wrong.join(", "),
                answer.head.trim()
            );
        }
        Ok(())
    }
}

/// How a proxy is set up for one run.
pub struct Setup<'a> {
    pub upstream: SocketAddr,
    pub workers: usize,
    /// CPUs the proxy runs on (empty: not pinned).
    pub cpus: &'a [usize],
    /// Terminate TLS with this certificate.
    pub tls: Option<&'a Material>,
    /// With `tls`: offer HTTP/2 through ALPN (`h2`, then `http/1.1`).
    pub h2: bool,
    pub policies: &'a Policies,
}

/// Starts `target` in `dir` as `setup` says and waits until it answers a
/// GET (with the policies' fields) with 200.
pub fn start(target: Target, programs: &Programs, dir: &Path, setup: &Setup) -> Result<Running> {
    let Setup {
        upstream,
        workers,
        cpus,
        tls,
        h2,
        policies,
    } = *setup;
    if h2 && tls.is_none() {
        bail!("HTTP/2 is only set up over TLS (ALPN h2)");
    }
    if target == Target::Direct {
        if tls.is_some() {
            bail!("not measured (the origin speaks plain HTTP)");
        }
        return Ok(Running {
            addr: upstream,
            admin: None,
            guard: None,
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let port = free_port()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = dir.join("proxy.log");
    let mut admin = None;
    let mut cmd = match target {
        Target::Ringway => {
            admin = Some(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
            let conf = dir.join("gateway.toml");
            std::fs::write(
                &conf,
                ringway_config(addr, upstream, workers, (tls, h2), admin, policies),
            )?;
            let mut c = Command::new(&programs.ringway);
            c.arg("serve").arg("-c").arg(&conf);
            c
        }
        Target::Nginx => {
            let program = programs.nginx.as_ref().context("nginx is not available")?;
            let conf = dir.join("nginx.conf");
            let http2 = Http2::for_nginx(program, h2);
            std::fs::write(
                &conf,
                nginx_config(addr, upstream, workers, dir, (tls, http2), policies),
            )?;
            let mut c = Command::new(program);
            c.arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.join("error.log"));
            c
        }
        Target::Haproxy => {
            let program = programs
                .haproxy
                .as_ref()
                .context("haproxy is not available")?;
            let conf = dir.join("haproxy.cfg");
            std::fs::write(
                &conf,
                haproxy_config(addr, upstream, workers, dir, (tls, h2)),
            )?;
            let mut c = Command::new(program);
            c.arg("-db").arg("-f").arg(&conf);
            c
        }
        Target::Direct => unreachable!("handled above"),
    };
    process::prepare(&mut cmd, cpus, &log)?;
    let mut guard = Guard::spawn(target.name(), cmd, log.clone())?;
    let client = tls.map(|_| crate::tls::client_config(false)).transpose()?;
    let ready = idle::wait_ready(
        addr,
        START_TIMEOUT,
        &mut || guard.exit_status().is_none(),
        client.as_ref(),
        &policies.fields,
    );
    if let Err(e) = ready {
        let mut tail = guard.log_tail();
        let err_log = dir.join("error.log");
        if err_log.is_file() {
            tail.push('\n');
            tail.push_str(&process::log_tail(&err_log));
        }
        let status = guard.exit_status();
        if let Some(s) = status
            && process::stopped_from_outside(s)
        {
            bail!(
                "interrupted from outside: {} stopped during start-up ({s})",
                target.name()
            );
        }
        let status = status.map(|s| format!(" ({s})")).unwrap_or_default();
        bail!(
            "{} failed to start{status}: {e:#}\n{}",
            target.name(),
            tail.trim()
        );
    }
    Ok(Running {
        addr,
        admin,
        guard: Some(guard),
    })
}

fn ringway_config(
    listen: SocketAddr,
    upstream: SocketAddr,
    workers: usize,
    (tls, h2): (Option<&Material>, bool),
    admin: Option<SocketAddr>,
    policies: &Policies,
) -> String {
    let tables = &policies.ringway_tables;
    let route = &policies.ringway_route;
    let admin = admin
        .map(|a| format!("\n[server.admin]\nlisten = \"{a}\"\n"))
        .unwrap_or_default();
    let listen = match tls {
        None => format!("\"{listen}\""),
        Some(m) => format!(
            "{{ addr = \"{listen}\", tls = {{ cert = \"{}\", key = \"{}\" }}{} }}",
            m.cert.display(),
            m.key.display(),
            if h2 {
                r#", alpn = ["h2", "http/1.1"]"#
            } else {
                ""
            }
        ),
    };
    format!(
        r#"# written by ringway-bench
[server]
listen = [{listen}]
workers = {workers}
pin = false          # the bench sets the CPU affinity of the whole process
{admin}
[[upstream]]
name = "app"
targets = ["{upstream}"]
max_idle_per_target = 1024
{tables}
# API Gateway templates: `/{{proxy+}}` does not match `/` itself.
[[route]]
path = "/"
upstream = "app"
{route}
[[route]]
path = "/{{proxy+}}"
upstream = "app"
{route}"#
    )
}

/// How nginx is told to speak HTTP/2 on a TLS listener: the `http2`
/// parameter of `listen` before 1.25.1, the `http2 on;` directive since
/// (where the parameter is deprecated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Http2 {
    Off,
    ListenParameter,
    Directive,
}

impl Http2 {
    /// The form for the nginx at `program` (`nginx -v`, read once).
    fn for_nginx(program: &Path, h2: bool) -> Http2 {
        static DIRECTIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if !h2 {
            return Http2::Off;
        }
        let directive = *DIRECTIVE.get_or_init(|| {
            Command::new(program)
                .arg("-v")
                .output()
                .ok()
                .and_then(|o| nginx_version(&String::from_utf8_lossy(&o.stderr)))
                .is_some_and(|v| v >= (1, 25, 1))
        });
        if directive {
            Http2::Directive
        } else {
            Http2::ListenParameter
        }
    }
}

/// `(major, minor, patch)` from `nginx -v`'s `nginx version: nginx/1.22.1`.
fn nginx_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split("nginx/").nth(1)?.split_whitespace().next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

fn nginx_config(
    listen: SocketAddr,
    upstream: SocketAddr,
    workers: usize,
    dir: &Path,
    (tls, http2): (Option<&Material>, Http2),
    policies: &Policies,
) -> String {
    let http_extra = &policies.nginx_http;
    let location_extra = &policies.nginx_location;
    // TLS: the same certificate as the others, default ciphers, default
    // session handling (TLS 1.3 tickets on, no shared session cache).
    // HTTP/2: nginx's defaults otherwise (128 concurrent streams, 64 KiB
    // body preread; `keepalive_requests` below also bounds h2 streams).
    let (ssl, ssl_conf) = match tls {
        None => ("", String::new()),
        Some(m) => (
            if http2 == Http2::ListenParameter {
                " ssl http2"
            } else {
                " ssl"
            },
            format!(
                "\n        ssl_certificate {};\n        ssl_certificate_key {};\n        ssl_protocols TLSv1.2 TLSv1.3;{}",
                m.cert.display(),
                m.key.display(),
                if http2 == Http2::Directive {
                    "\n        http2 on;"
                } else {
                    ""
                }
            ),
        ),
    };
    let dir = dir.display();
    // One worker: a single process (no master), like the other proxies.
    let master = if workers == 1 { "off" } else { "on" };
    let reuseport = if workers == 1 { "" } else { " reuseport" };
    let (nofile, max_conn) = fd_limits();
    let mut c = String::new();
    let _ = write!(
        c,
        r#"# written by ringway-bench
user root;
daemon off;
master_process {master};
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections {max_conn};
}}

http {{
    access_log off;
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    client_max_body_size 0;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy_temp;
{http_extra}
    upstream app {{
        server {upstream};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
    }}

    server {{
        listen {listen}{ssl}{reuseport};{ssl_conf}
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
{location_extra}        }}
    }}
}}
"#,
    );
    c
}

fn haproxy_config(
    listen: SocketAddr,
    upstream: SocketAddr,
    workers: usize,
    dir: &Path,
    (tls, h2): (Option<&Material>, bool),
) -> String {
    // TLS: the same certificate (with its key, in one file), ALPN http/1.1
    // (h2 first for the HTTP/2 scenarios: HAProxy's default h2 settings,
    // 100 concurrent streams), default ciphers and session handling.
    let alpn = if h2 { "h2,http/1.1" } else { "http/1.1" };
    let ssl = match tls {
        None => String::new(),
        Some(m) => format!(" ssl crt {} alpn {alpn}", m.combined.display()),
    };
    let dir = dir.display();
    // HAProxy wants two descriptors per connection and refuses to start when
    // it cannot raise RLIMIT_NOFILE that far; `no strict-limits` makes that a
    // warning (idle client connections need only one descriptor each).
    let (_, max_conn) = fd_limits();
    format!(
        r#"# written by ringway-bench
global
    nbthread {workers}
    maxconn {max_conn}
    no strict-limits
    pidfile {dir}/haproxy.pid

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s

frontend bench
    bind {listen}{ssl}
    default_backend app

backend app
    http-reuse always
    server s1 {upstream}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_versions_read() {
        assert_eq!(
            nginx_version("nginx version: nginx/1.22.1\n"),
            Some((1, 22, 1))
        );
        assert_eq!(
            nginx_version("nginx version: nginx/1.25.1 (Ubuntu)"),
            Some((1, 25, 1))
        );
        assert_eq!(nginx_version("nginx version: nginx/1.27"), Some((1, 27, 0)));
        assert_eq!(nginx_version("nginx version: openresty/1.21.4.1"), None);
    }

    #[test]
    fn http2_is_offered_the_way_each_proxy_wants() {
        let m = Material {
            cert: "/c.pem".into(),
            key: "/k.pem".into(),
            combined: "/ck.pem".into(),
            description: String::new(),
        };
        let listen: SocketAddr = ([127, 0, 0, 1], 8443).into();
        let up: SocketAddr = ([127, 0, 0, 1], 9000).into();
        let p = Policies::default();
        let dir = Path::new("/tmp/x");
        let rw = ringway_config(listen, up, 1, (Some(&m), true), None, &p);
        assert!(rw.contains(r#"alpn = ["h2", "http/1.1"]"#), "{rw}");
        let rw = ringway_config(listen, up, 1, (Some(&m), false), None, &p);
        assert!(!rw.contains("alpn"), "{rw}");
        let old = nginx_config(listen, up, 1, dir, (Some(&m), Http2::ListenParameter), &p);
        assert!(old.contains("listen 127.0.0.1:8443 ssl http2;"), "{old}");
        assert!(!old.contains("http2 on;"), "{old}");
        let new = nginx_config(listen, up, 1, dir, (Some(&m), Http2::Directive), &p);
        assert!(new.contains("listen 127.0.0.1:8443 ssl;"), "{new}");
        assert!(new.contains("http2 on;"), "{new}");
        let h1 = nginx_config(listen, up, 1, dir, (Some(&m), Http2::Off), &p);
        assert!(!h1.contains("http2"), "{h1}");
        let ha = haproxy_config(listen, up, 1, dir, (Some(&m), true));
        assert!(ha.contains("ssl crt /ck.pem alpn h2,http/1.1"), "{ha}");
        let ha = haproxy_config(listen, up, 1, dir, (Some(&m), false));
        assert!(ha.contains("ssl crt /ck.pem alpn http/1.1\n"), "{ha}");
    }
}
