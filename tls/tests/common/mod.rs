//! Test fixtures: a throwaway PKI written to a temp dir, an echo server on a
//! monoio runtime thread using `ringway_tls::accept`, and a blocking rustls
//! client over `std::net::TcpStream`.
#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use ringway_tls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use ringway_tls::rustls::pki_types::pem::PemObject;
use ringway_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use ringway_tls::rustls::{
    self, ClientConfig, ClientConnection, DigitallySignedStruct, ProtocolVersion, RootCertStore,
    ServerConfig, SignatureScheme, StreamOwned, SupportedProtocolVersion,
};
use ringway_tls::{CertSpec, TlsError};

/// Every blocking wait in the tests gives up after this.
pub const TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- files

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ringway-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------- PKI

/// A certificate authority that issues leaves.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, in PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `names` (DNS SANs), currently valid.
    pub fn server_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth, |_| {})
    }

    /// A client certificate with common name `name`.
    pub fn client_leaf(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, |_| {})
    }

    pub fn leaf(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

impl Leaf {
    /// Writes `<name>.crt` and `<name>.key` into `dir`.
    pub fn write(&self, dir: &TempDir, name: &str) -> CertSpec {
        CertSpec::new(
            dir.write(&format!("{name}.crt"), &self.cert_pem),
            dir.write(&format!("{name}.key"), &self.key_pem),
        )
    }
}

// ---------------------------------------------------------------- monoio

/// Runs `fut` to completion on a fresh monoio runtime on this thread (io_uring
/// if available, else epoll; `MONOIO_FORCE_LEGACY_DRIVER=1` forces epoll).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("monoio runtime")
        .block_on(fut)
}

/// What the server saw of one accepted connection.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<ProtocolVersion>,
    pub resumed: bool,
    pub peer_certs: Vec<CertificateDer<'static>>,
}

/// An echo server on its own thread and monoio runtime. Each accepted
/// connection's handshake result is sent on `accepted`; successful ones echo
/// bytes until the client closes, then `shutdown` (close_notify).
pub struct EchoServer {
    pub addr: SocketAddr,
    pub accepted: mpsc::Receiver<Result<Accepted, TlsError>>,
}

impl EchoServer {
    pub fn start(config: Arc<ServerConfig>) -> EchoServer {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (tx, accepted) = mpsc::channel();
        std::thread::spawn(move || {
            block_on(async move {
                let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let config = Arc::clone(&config);
                    let tx = tx.clone();
                    monoio::spawn(async move { serve(config, tcp, tx).await });
                }
            })
        });
        let addr = addr_rx.recv_timeout(TIMEOUT).expect("server start");
        EchoServer { addr, accepted }
    }

    /// The next handshake result.
    pub fn next(&self) -> Result<Accepted, TlsError> {
        self.accepted
            .recv_timeout(TIMEOUT)
            .expect("server reported no handshake in time")
    }
}

async fn serve(
    config: Arc<ServerConfig>,
    tcp: monoio::net::TcpStream,
    tx: mpsc::Sender<Result<Accepted, TlsError>>,
) {
    let stream = match monoio::time::timeout(TIMEOUT, ringway_tls::accept(config, tcp)).await {
        Ok(result) => result,
        Err(_) => panic!("server handshake timed out"),
    };
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let seen = Accepted {
        sni: stream.server_name().map(str::to_owned),
        alpn: stream.alpn_protocol().map(<[u8]>::to_vec),
        version: stream.protocol_version(),
        resumed: stream.is_resumed(),
        peer_certs: stream
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default(),
    };
    let _ = tx.send(Ok(seen));
    let _ = echo(&mut stream).await;
}

/// Echoes until end of stream, then closes with close_notify.
pub async fn echo<S: AsyncReadRent + AsyncWriteRent>(stream: &mut S) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let (res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return stream.shutdown().await;
        }
        let (res, b) = stream.write_all(b).await;
        res?;
        buf = b;
        buf.clear();
    }
}

// ---------------------------------------------------------------- std client

pub type StdTls = StreamOwned<ClientConnection, TcpStream>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A blocking client config trusting `ca`, limited to `versions`, offering
/// ALPN http/1.1 and optionally presenting `cert`.
pub fn std_client(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    cert: Option<&Leaf>,
) -> ClientConfig {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(leaf) => {
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder
                .with_client_auth_cert(vec![leaf.der.clone()], key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A blocking client config that accepts any server certificate, so a test
/// can look at which one the server chose whatever the name.
pub fn std_client_any_cert(versions: &[&'static SupportedProtocolVersion]) -> ClientConfig {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Connects and completes the handshake, with socket timeouts set.
pub fn std_connect(addr: SocketAddr, config: &Arc<ClientConfig>, sni: &str) -> io::Result<StdTls> {
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Sends `data` and reads the echo back, in chunks so neither side blocks.
pub fn std_round_trip(tls: &mut StdTls, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(64 * 1024) {
        tls.write_all(chunk)?;
        tls.flush()?;
        let mut back = vec![0; chunk.len()];
        tls.read_exact(&mut back)?;
        assert!(back == chunk, "echo differs");
    }
    Ok(())
}

/// Sends close_notify and waits for the server's, so session tickets
/// sent after the handshake have been processed.
pub fn std_close(mut tls: StdTls) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest);
}

/// The leaf certificate the server presented.
pub fn std_server_cert(tls: &StdTls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().expect("server certificate")[0].clone()
}

#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks that `err`'s message names `path`.
pub fn assert_names(err: &TlsError, path: &Path) {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error {message:?} does not name {}",
        path.display()
    );
}
