//! HTTPS for the TLS scenarios: one certificate and key shared by every
//! proxy, and a small blocking rustls client for the readiness check, the
//! session probe (what gets negotiated, does a second connection resume)
//! and the full-handshake load (one thread per connection, resumption off).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, HandshakeKind, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::json;

/// Per-socket connect/read/write timeout of the client.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A response head must fit in this many bytes.
const MAX_HEAD: usize = 16 * 1024;

/// The certificate every proxy serves, in the forms they want.
pub struct Material {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate followed by key (HAProxy's `crt`).
    pub combined: PathBuf,
    /// One line for the report.
    pub description: String,
}

impl Material {
    /// A fresh self-signed ECDSA P-256 certificate (CN and SAN localhost,
    /// SAN IP 127.0.0.1, valid 2 days), made with the `openssl` CLI.
    pub fn generate(dir: &Path) -> Result<Material> {
        std::fs::create_dir_all(dir)?;
        let cert = dir.join("site.pem");
        let key = dir.join("site.key");
        let combined = dir.join("site-combined.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .context("cannot run openssl (needed to make the test certificate)")?;
        if !out.status.success() {
            bail!(
                "openssl req failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut both = std::fs::read(&cert)?;
        both.extend_from_slice(&std::fs::read(&key)?);
        std::fs::write(&combined, both)?;
        let version = Command::new("openssl")
            .arg("version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Ok(Material {
            cert,
            key,
            combined,
            description: format!(
                "one self-signed ECDSA P-256 certificate (CN=localhost, SAN localhost and 127.0.0.1) made at the start of the suite \
                 with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256` ({version}), served by every proxy"
            ),
        })
    }
}

/// Accepts any server certificate; the handshake signature is still checked
/// against the certificate's key, so the server does all of its work.
#[derive(Debug)]
struct TrustAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A rustls client configuration (ring, default versions, suites and
/// groups, ALPN http/1.1, no certificate verification). `resume`: keep
/// session tickets and offer them (the rustls default, as in ringway-load).
pub fn client_config(resume: bool) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS client setup")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// What one request over a new TLS connection saw.
pub struct Exchange {
    pub status: u16,
    /// TCP connect, TLS handshake, and request-to-response times.
    pub phases_us: [u32; 3],
    pub kind: Option<HandshakeKind>,
    pub session: String,
}

/// Which step of an exchange failed (the error counters of the load).
#[derive(Debug, Clone, Copy)]
enum Step {
    Connect,
    Handshake,
    Write,
    Read,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Connect => "connect",
            Step::Handshake => "handshake",
            Step::Write => "write",
            Step::Read => "read",
        }
    }
}

/// Connects to `addr`, does the handshake, sends one `GET /` with
/// `Connection: close` and reads the whole response.
fn exchange(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<Exchange, (Step, String)> {
    let err = |step: Step| move |e: std::io::Error| (step, e.to_string());
    let t0 = Instant::now();
    let us = |since: Instant| since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(err(Step::Connect))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(IO_TIMEOUT)))
        .and_then(|()| tcp.set_nodelay(true))
        .map_err(err(Step::Connect))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| (Step::Handshake, e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let connect_us = us(t0);
    let t1 = Instant::now();
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(err(Step::Handshake))?;
    }
    let handshake_us = us(t1);
    let t2 = Instant::now();
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .and_then(|()| tls.flush())
        .map_err(err(Step::Write))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err((Step::Read, format!("response head over {MAX_HEAD} bytes")));
        }
        let n = tls.read(&mut chunk).map_err(err(Step::Read))?;
        if n == 0 {
            return Err((
                Step::Read,
                "connection closed before the response head".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or((Step::Read, "no status code in the response".to_string()))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or((Step::Read, "response has no Content-Length".to_string()))?;
    let mut have = buf.len() - head_end;
    while have < length {
        let n = tls.read(&mut chunk).map_err(err(Step::Read))?;
        if n == 0 {
            return Err((
                Step::Read,
                "connection closed inside the response body".into(),
            ));
        }
        have += n;
    }
    let phases_us = [connect_us, handshake_us, us(t2)];
    let c = &tls.conn;
    let session = format!(
        "{}, {}, key exchange {}, ALPN {}",
        c.protocol_version()
            .map_or_else(|| "?".into(), |v| format!("{v:?}")),
        c.negotiated_cipher_suite()
            .map_or_else(|| "?".into(), |s| format!("{:?}", s.suite())),
        c.negotiated_key_exchange_group()
            .map_or_else(|| "none".into(), |g| format!("{:?}", g.name())),
        c.alpn_protocol()
            .map_or_else(|| "none".into(), |p| String::from_utf8_lossy(p).to_string()),
    );
    Ok(Exchange {
        status,
        phases_us,
        kind: c.handshake_kind(),
        session,
    })
}

/// One GET over a new TLS connection (no resumption); returns the status.
pub fn get_status(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<u16> {
    exchange(addr, config)
        .map(|e| e.status)
        .map_err(|(step, e)| anyhow::anyhow!("{}: {e}", step.name()))
}

/// What a rustls client with the default settings (as ringway-load's)
/// negotiates with the proxy, and whether a second connection resumes the
/// session of the first.
pub fn probe(addr: SocketAddr) -> Result<String> {
    let config = client_config(true)?;
    let fail = |(step, e): (Step, String)| anyhow::anyhow!("{}: {e}", step.name());
    let first = exchange(addr, &config).map_err(fail)?;
    let second = exchange(addr, &config).map_err(fail)?;
    Ok(format!(
        "{}; first connection: {} handshake; a second connection offering the ticket: {} handshake",
        first.session,
        first.kind.map_or("?".into(), |k| format!("{k:?}")),
        second.kind.map_or("?".into(), |k| format!("{k:?}")),
    ))
}

/// The full-handshake load: `connections` threads (pinned to `cpus`), each
/// in a loop of new connection, full handshake (resumption off), one GET,
/// close, for `duration`. Returns a report shaped like ringway-load's JSON
/// (`requests`, `rps`, `latency_us`, `errors`, `status`).
pub fn full_handshake_load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    cpus: &[usize],
) -> Result<serde_json::Value> {
    if !addr.ip().is_loopback() {
        bail!("only loopback targets: {addr}");
    }
    let config = client_config(false)?;
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let config = Arc::clone(&config);
            let cpus = cpus.to_vec();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    pin_this_thread(&cpus);
                    let mut latencies: Vec<u32> = Vec::with_capacity(4096);
                    let mut phases: [Vec<u32>; 3] = Default::default();
                    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
                    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
                    let mut first_error: Option<String> = None;
                    let mut resumed = 0u64;
                    while Instant::now() < deadline && !crate::process::stop_requested() {
                        let t0 = Instant::now();
                        match exchange(addr, &config) {
                            Ok(x) => {
                                let us = t0.elapsed().as_micros().min(u128::from(u32::MAX));
                                latencies.push(us as u32);
                                for (v, p) in phases.iter_mut().zip(x.phases_us) {
                                    v.push(p);
                                }
                                *status.entry(x.status).or_default() += 1;
                                if x.kind == Some(HandshakeKind::Resumed) {
                                    resumed += 1;
                                }
                            }
                            Err((step, e)) => {
                                *errors.entry(step.name()).or_default() += 1;
                                first_error.get_or_insert(format!("{}: {e}", step.name()));
                            }
                        }
                    }
                    (latencies, status, errors, first_error, resumed, phases)
                })
        })
        .collect::<std::io::Result<_>>()
        .context("cannot start the client threads")?;
    let mut latencies = Vec::new();
    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut first_error = None;
    let mut resumed = 0;
    let mut phases: [Vec<u32>; 3] = Default::default();
    for h in handles {
        let (l, s, e, f, r, p) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        latencies.extend(l);
        for (k, v) in s {
            *status.entry(k).or_default() += v;
        }
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
        if first_error.is_none() {
            first_error = f;
        }
        resumed += r;
        for (all, one) in phases.iter_mut().zip(p) {
            all.extend(one);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    for v in &mut phases {
        v.sort_unstable();
    }
    let pct_of = |v: &[u32], q: f64| -> u64 {
        if v.is_empty() {
            return 0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        u64::from(v[rank - 1])
    };
    let pct = |q: f64| pct_of(&latencies, q);
    let phase =
        |i: usize| json!({ "p50": pct_of(&phases[i], 0.5), "p99": pct_of(&phases[i], 0.99) });
    let requests = latencies.len() as u64;
    let mut errs: serde_json::Map<String, serde_json::Value> = errors
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    errs.insert("total".into(), json!(errors.values().sum::<u64>()));
    Ok(json!({
        "requests": requests,
        "rps": requests as f64 / elapsed,
        "latency_us": { "p50": pct(0.5), "p99": pct(0.99), "p99_9": pct(0.999) },
        "errors": errs,
        "first_error": first_error,
        "resumed": resumed,
        "phases_us": { "connect": phase(0), "handshake": phase(1), "request": phase(2) },
        "status": status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
}

/// Restricts the calling thread to `cpus` (empty: unchanged).
fn pin_this_thread(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: sched_setaffinity on a zeroed local cpu_set_t for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
