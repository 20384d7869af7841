//! The listener (server) side configuration.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, WebPkiClientVerifier};

use crate::error::{ErrorKind, TlsError};
use crate::load::{CertInfo, CertSpec, load_ca_bundle, load_cert};
use crate::resolver::{CertTable, SniResolver};
use crate::{ALPN_HTTP11, PROTOCOL_VERSIONS, crypto_provider};

/// Session-id cache entries per worker (TLS 1.2 clients that do not use
/// tickets). An entry is a few hundred bytes.
pub const SESSION_CACHE_PER_WORKER: usize = 4096;

/// TLS 1.3 tickets sent after each full handshake.
pub const TLS13_TICKETS_PER_HANDSHAKE: usize = 2;

/// The server-side TLS state of one listener, shared by all workers.
///
/// Holds the SNI certificate resolver (reloadable), the ticket key rotator
/// and the optional client-certificate verifier; [`ServerTls::worker_config`]
/// turns them into a rustls `ServerConfig` per worker.
pub struct ServerTls {
    specs: Vec<CertSpec>,
    client_auth: bool,
    resolver: Arc<SniResolver>,
    /// Everything but the session cache, which each worker gets afresh.
    template: ServerConfig,
}

impl ServerTls {
    /// Loads and checks every certificate/key pair and the client CA bundle.
    ///
    /// The first certificate is the default (no SNI, or SNI matching no
    /// certificate's DNS names). With `client_ca`, every client must present
    /// a certificate chaining to one of its CAs (mTLS).
    pub fn load(certs: &[CertSpec], client_ca: Option<&Path>) -> Result<ServerTls, TlsError> {
        if certs.is_empty() {
            return Err(TlsError::new(
                ErrorKind::Config,
                "no certificate configured",
            ));
        }
        let provider = crypto_provider();
        let table = load_table(certs)?;
        let verifier: Option<Arc<dyn ClientCertVerifier>> = match client_ca {
            Some(path) => {
                let roots = load_ca_bundle(path)?;
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(|e| {
                    TlsError::file(ErrorKind::Config, path, e.to_string()).with_source(e)
                })?;
                Some(verifier)
            }
            None => None,
        };
        let ticketer: Arc<dyn ProducesTickets> = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError::new(ErrorKind::Config, e.to_string()).with_source(e))?;

        let resolver = Arc::new(SniResolver::new(table));
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(PROTOCOL_VERSIONS)
            .map_err(|e| TlsError::new(ErrorKind::Config, e.to_string()).with_source(e))?;
        let builder = match verifier {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut template = builder.with_cert_resolver(Arc::clone(&resolver) as _);
        template.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        template.ticketer = ticketer;
        template.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
        Ok(ServerTls {
            specs: certs.to_vec(),
            client_auth: client_ca.is_some(),
            resolver,
            template,
        })
    }

    /// The protocols offered by ALPN, in order of preference (`http/1.1`
    /// alone unless set).
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> ServerTls {
        if !protocols.is_empty() {
            self.template.alpn_protocols = protocols;
        }
        self
    }

    /// A rustls `ServerConfig` for one worker thread. Workers share the
    /// certificate resolver (so [`reload`](ServerTls::reload) reaches all of
    /// them) and the ticket keys (a ticket issued on one core resumes on any
    /// other); each call gets its own session-id cache, so the hot path takes
    /// no lock another core contends for. Call once per worker and keep it.
    pub fn worker_config(&self) -> Arc<ServerConfig> {
        let mut config = self.template.clone();
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_PER_WORKER);
        Arc::new(config)
    }

    /// Re-reads the certificate and key files given to [`load`](ServerTls::load)
    /// and, if all of them pass the same checks, swaps them in at once: new
    /// handshakes on every worker use the new certificates, open connections
    /// are not touched. On error nothing changes and the error names the
    /// file. The client CA bundle is not re-read.
    pub fn reload(&self) -> Result<(), TlsError> {
        let table = load_table(&self.specs)?;
        self.resolver.replace(table);
        Ok(())
    }

    /// What the certificates in use say about themselves, in configuration order.
    pub fn certificates(&self) -> Vec<CertInfo> {
        self.resolver.table().infos().to_vec()
    }

    /// Whether clients must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.client_auth
    }
}

fn load_table(specs: &[CertSpec]) -> Result<CertTable, TlsError> {
    let provider = crypto_provider();
    let certs = specs
        .iter()
        .map(|spec| load_cert(spec, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CertTable::new(certs))
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("certificates", &self.resolver)
            .field("client_auth", &self.requires_client_cert())
            .finish()
    }
}
