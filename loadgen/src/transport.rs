//! Connections: plain TCP or TLS (rustls over monoio), behind one enum so the
//! worker's request loop does not care which.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// An open connection to a target.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl Stream {
    pub async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    pub async fn write_all<T: IoBuf + 'static>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => s.write_all(buf).await,
        }
    }
}

/// The reading half of a [`Stream`] split by [`Stream::into_split`].
pub enum StreamReader {
    Plain(OwnedReadHalf<TcpStream>),
    Tls(OwnedReadHalf<ClientTlsStream<TcpStream>>),
}

/// The writing half of a [`Stream`] split by [`Stream::into_split`].
pub enum StreamWriter {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(OwnedWriteHalf<ClientTlsStream<TcpStream>>),
}

impl Stream {
    /// Splits the connection so that a read and a write can be under way
    /// at once (HTTP/2 sends while it waits for responses). Both monoio's
    /// TCP stream and monoio-rustls's TLS stream support this.
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (StreamReader::Plain(r), StreamWriter::Plain(w))
            }
            Stream::Tls(s) => {
                let (r, w) = (*s).into_split();
                (StreamReader::Tls(r), StreamWriter::Tls(w))
            }
        }
    }
}

impl StreamReader {
    pub async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            StreamReader::Plain(s) => s.read(buf).await,
            StreamReader::Tls(s) => s.read(buf).await,
        }
    }
}

impl StreamWriter {
    pub async fn write_all<T: IoBuf + 'static>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            StreamWriter::Plain(s) => s.write_all(buf).await,
            StreamWriter::Tls(s) => s.write_all(buf).await,
        }
    }
}

/// Everything needed to open a connection to one target.
#[derive(Clone)]
pub struct Connector {
    pub addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// Each connection carries one request (`--no-keepalive`).
    one_request: bool,
}

impl Connector {
    pub fn plain(addr: SocketAddr) -> Self {
        Connector {
            addr,
            tls: None,
            one_request: false,
        }
    }

    /// Marks connections as carrying one request each (no keep-alive).
    #[must_use]
    pub fn one_request(mut self, yes: bool) -> Self {
        self.one_request = yes;
        self
    }

    pub fn tls(addr: SocketAddr, config: Arc<ClientConfig>, host: &str) -> anyhow::Result<Self> {
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("'{host}' is not a valid TLS server name"))?;
        Ok(Connector {
            addr,
            tls: Some((TlsConnector::from(config), name)),
            one_request: false,
        })
    }

    pub async fn connect(&self) -> io::Result<Stream> {
        let tcp = TcpStream::connect_addr(self.addr).await?;
        // A connection that carries one request writes once, into an idle
        // connection: Nagle's algorithm never holds such a write back, so
        // the setsockopt (one syscall per request) is skipped.
        if !self.one_request {
            tcp.set_nodelay(true)?;
        }
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(io::Error::from)?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }
}

/// Builds the rustls client configuration (ring provider, offering the
/// ALPN protocols `alpn`, most preferred first).
pub fn client_config(
    insecure: bool,
    cacert: Option<&Path>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = cacert {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read --cacert {}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("--cacert {} holds no certificate", path.display());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("bad certificate in {}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// `--insecure`: accept any server certificate (signatures are still checked
/// for well-formedness by the handshake, not against a trusted chain).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
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
