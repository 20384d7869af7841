//! Certificate choice by SNI.
//!
//! A [`CertTable`] maps exact DNS names and wildcard suffixes to certificates;
//! [`SniResolver`] holds the current table behind an [`ArcSwap`] so a reload
//! replaces it atomically while handshakes keep reading it without locks.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::load::{CertInfo, LoadedCert};

/// An immutable lookup table built from an ordered list of certificates.
pub(crate) struct CertTable {
    /// `www.example.com` → certificate.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` (from `*.example.com`) → certificate.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// The first certificate: used without SNI or when no name matches.
    default: Arc<CertifiedKey>,
    infos: Vec<CertInfo>,
}

impl CertTable {
    /// Builds the table. `certs` must not be empty. When two certificates
    /// claim the same name, the earlier one keeps it.
    pub(crate) fn new(certs: Vec<LoadedCert>) -> CertTable {
        let default = Arc::clone(&certs[0].key);
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut infos = Vec::with_capacity(certs.len());
        for cert in certs {
            for name in &cert.info.dns_names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(suffix) => (&mut wildcard, suffix),
                    None => (&mut exact, name.as_str()),
                };
                map.entry(key.to_owned())
                    .or_insert_with(|| Arc::clone(&cert.key));
            }
            infos.push(cert.info);
        }
        CertTable {
            exact,
            wildcard,
            default,
            infos,
        }
    }

    /// The certificate for an SNI name (already lowercase): exact match, then
    /// a wildcard one label deep (`*.example.com` covers `a.example.com`, not
    /// `example.com` nor `a.b.example.com`), then the default.
    pub(crate) fn lookup(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = sni else {
            return &self.default;
        };
        if let Some(key) = self.exact.get(name) {
            return key;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = self.wildcard.get(parent)
        {
            return key;
        }
        &self.default
    }

    pub(crate) fn infos(&self) -> &[CertInfo] {
        &self.infos
    }
}

/// The rustls certificate resolver shared by every worker's `ServerConfig`.
pub(crate) struct SniResolver {
    table: ArcSwap<CertTable>,
}

impl SniResolver {
    pub(crate) fn new(table: CertTable) -> SniResolver {
        SniResolver {
            table: ArcSwap::from_pointee(table),
        }
    }

    /// Makes `table` the one new handshakes see.
    pub(crate) fn replace(&self, table: CertTable) {
        self.table.store(Arc::new(table));
    }

    pub(crate) fn table(&self) -> Arc<CertTable> {
        self.table.load_full()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let key = match hello.server_name() {
            // rustls lowercases SNI already; keep the fast path allocation-free.
            Some(name) if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                table.lookup(Some(&name.to_ascii_lowercase()))
            }
            name => table.lookup(name),
        };
        Some(Arc::clone(key))
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certificates", &self.table.load().infos)
            .finish()
    }
}
