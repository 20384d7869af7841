//! Reading certificates, keys and CA bundles from PEM files, with the checks
//! that make a bad file fail at load time instead of at the first handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{ErrorKind, TlsError};

/// One certificate chain and its private key, as two PEM files.
///
/// `cert` holds the leaf certificate first, then any intermediates; `key`
/// holds one private key (PKCS#8, PKCS#1/RSA or SEC1/EC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key of the leaf certificate.
    pub key: PathBuf,
}

impl CertSpec {
    /// A spec from two paths.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> CertSpec {
        CertSpec {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// A loaded, checked certificate: the rustls key pair plus what the SNI
/// resolver and operators need to know about it.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCert {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) info: CertInfo,
}

/// What a loaded certificate says about itself (for logs and the admin endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The certificate file it was read from.
    pub file: PathBuf,
    /// DNS names from the leaf's subjectAltName, lowercased, in certificate
    /// order; wildcards keep their `*.` prefix.
    pub dns_names: Vec<String>,
    /// The leaf's `notAfter`, in seconds since the Unix epoch.
    pub not_after_unix: i64,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::read(path, e))
}

fn pem_error(path: &Path, err: pem::Error) -> TlsError {
    let detail = match &err {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "no \"-----END {}-----\" line",
                String::from_utf8_lossy(end_marker)
            )
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("bad BEGIN line {:?}", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(reason) => format!("bad base64: {reason}"),
        other => other.to_string(),
    };
    TlsError::file(ErrorKind::BadPem, path, detail)
}

/// Reads every `CERTIFICATE` section of a PEM file (other sections are skipped).
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::file(ErrorKind::NoCertificate, path, ""));
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::file(ErrorKind::NoPrivateKey, path, "")),
        Err(e) => Err(pem_error(path, e)),
    }
}

fn now_unix() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

fn parse<'a>(
    path: &Path,
    index: usize,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, TlsError> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, cert)| cert)
        .map_err(|e| {
            TlsError::file(
                ErrorKind::InvalidCertificate,
                path,
                format!("certificate #{}: {e}", index + 1),
            )
        })
}

/// Fails if `cert` is outside its validity period at `now` (Unix seconds).
fn check_validity(
    path: &Path,
    index: usize,
    cert: &X509Certificate<'_>,
    now: i64,
) -> Result<(), TlsError> {
    let validity = cert.validity();
    let which = if index == 0 {
        String::new()
    } else {
        format!(" (certificate #{} in chain)", index + 1)
    };
    if validity.not_after.timestamp() < now {
        // Reads "<file>: certificate expired on <date>".
        let detail = format!(" on {}{which}", validity.not_after);
        return Err(TlsError::file(ErrorKind::Expired, path, detail));
    }
    if validity.not_before.timestamp() > now {
        let detail = format!("valid from {}{which}", validity.not_before);
        return Err(TlsError::file(ErrorKind::NotYetValid, path, detail));
    }
    Ok(())
}

fn dns_names(path: &Path, leaf: &X509Certificate<'_>) -> Result<Vec<String>, TlsError> {
    let san = leaf.subject_alternative_name().map_err(|e| {
        TlsError::file(
            ErrorKind::InvalidCertificate,
            path,
            format!("subjectAltName: {e}"),
        )
    })?;
    let mut names = Vec::new();
    for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        if let GeneralName::DNSName(dns) = name {
            names.push(dns.trim_end_matches('.').to_ascii_lowercase());
        }
    }
    Ok(names)
}

/// Loads and checks one certificate chain and key: both files readable and
/// holding PEM, every certificate parseable and currently valid, the key
/// usable by `provider` and matching the leaf.
pub(crate) fn load_cert(
    spec: &CertSpec,
    provider: &CryptoProvider,
) -> Result<LoadedCert, TlsError> {
    let chain = read_certificates(&spec.cert)?;
    let now = now_unix();
    let mut info = CertInfo {
        file: spec.cert.clone(),
        dns_names: Vec::new(),
        not_after_unix: 0,
    };
    for (index, der) in chain.iter().enumerate() {
        let cert = parse(&spec.cert, index, der)?;
        check_validity(&spec.cert, index, &cert, now)?;
        if index == 0 {
            info.dns_names = dns_names(&spec.cert, &cert)?;
            info.not_after_unix = cert.validity().not_after.timestamp();
        }
    }

    let key_der = read_private_key(&spec.key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            TlsError::file(ErrorKind::UnsupportedKey, &spec.key, e.to_string()).with_source(e)
        })?;
    let key = CertifiedKey::new(chain, signing_key);
    match key.keys_match() {
        // `Unknown`: the provider cannot tell the public key; the handshake will.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            let detail = format!("key does not belong to {}", spec.cert.display());
            return Err(TlsError::file(ErrorKind::KeyMismatch, &spec.key, detail).with_source(e));
        }
    }
    Ok(LoadedCert {
        key: Arc::new(key),
        info,
    })
}

/// Loads a CA bundle into a root store. Certificates that webpki cannot use
/// as trust anchors are an error (naming their position), as is an empty bundle.
pub(crate) fn load_ca_bundle(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = match read_certificates(path) {
        Err(e) if e.kind() == ErrorKind::NoCertificate => {
            return Err(TlsError::file(ErrorKind::EmptyCaBundle, path, ""));
        }
        other => other?,
    };
    let mut roots = RootCertStore::empty();
    for (index, der) in certs.into_iter().enumerate() {
        roots.add(der).map_err(|e| {
            let detail = format!("certificate #{}: {e}", index + 1);
            TlsError::file(ErrorKind::InvalidCertificate, path, detail).with_source(e)
        })?;
    }
    Ok(roots)
}
