//! The upstream (client) side configuration.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};

use crate::error::{ErrorKind, TlsError};
use crate::load::{CertSpec, load_ca_bundle, load_cert};
use crate::{ALPN_HTTP11, PROTOCOL_VERSIONS, crypto_provider};

/// A rustls `ClientConfig` for connections to upstreams.
///
/// Server certificates are verified against the CA bundle at `ca` if given,
/// else against the operating system's trust store (see [`default_trust`]),
/// or the Mozilla roots compiled in (webpki-roots) where that is empty. With
/// `client_cert`, that certificate is presented when a server asks for one
/// (mTLS to the upstream). TLS 1.2 and 1.3, ALPN `http/1.1`, and rustls'
/// default client session cache (256 sessions, shared by all users of the
/// returned config: call once per worker to keep it per core).
pub fn client_config(
    ca: Option<&Path>,
    client_cert: Option<&CertSpec>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crypto_provider();
    let roots = match ca {
        Some(path) => load_ca_bundle(path)?,
        None => default_roots().0.clone(),
    };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| TlsError::new(ErrorKind::Config, e.to_string()).with_source(e))?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        Some(spec) => {
            let cert = load_cert(spec, &provider)?;
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(cert.key)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Where upstream certificates are checked when an upstream names no `ca`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's store (what `SSL_CERT_FILE` / `SSL_CERT_DIR`
    /// name, else the distribution's bundle), with this many certificates.
    System(usize),
    /// The system store was empty or unreadable: the Mozilla roots built
    /// into the binary, this many.
    Builtin(usize),
}

impl std::fmt::Display for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::System(n) => write!(f, "the system trust store ({n} certificates)"),
            Trust::Builtin(n) => write!(
                f,
                "the built-in Mozilla roots ({n}; the system trust store is empty)"
            ),
        }
    }
}

/// The roots used when no `ca` is given, read once per process.
pub fn default_trust() -> Trust {
    default_roots().1
}

/// [`default_trust`], if a config built so far in this process used it
/// (an `https://` upstream or key URL without `ca`); `None` otherwise.
pub fn default_trust_in_use() -> Option<Trust> {
    DEFAULT_ROOTS.get().map(|r| r.1)
}

static DEFAULT_ROOTS: OnceLock<(RootCertStore, Trust)> = OnceLock::new();

fn default_roots() -> &'static (RootCertStore, Trust) {
    DEFAULT_ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        // Certificates the store holds but rustls cannot use are skipped,
        // as a browser would; only an empty result falls back.
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = store.add_parsable_certificates(found.certs);
        if added > 0 {
            return (store, Trust::System(added));
        }
        let builtin = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let n = builtin.roots.len();
        (builtin, Trust::Builtin(n))
    })
}

/// Presents the same certificate to every server that asks.
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}
