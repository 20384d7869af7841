#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod error;
mod load;
mod resolver;
mod server;
mod split;
mod stream;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::{Trust, client_config, default_trust, default_trust_in_use};
pub use error::{ErrorKind, TlsError};
pub use load::{CertInfo, CertSpec};
pub use server::{SESSION_CACHE_PER_WORKER, ServerTls, TLS13_TICKETS_PER_HANDSHAKE};
pub use split::{TlsReadHalf, TlsWriteHalf};
pub use stream::{
    ClientStream, MAX_WRITE_CHUNK, READ_BUFFER_SIZE, ServerStream, TlsStream, accept, connect,
};

/// Re-exported so users name the same rustls version as this crate.
pub use rustls;

/// The only application protocol offered and accepted.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider every config of this crate uses: *ring*, with rustls'
/// default cipher suites and key exchange groups.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
