//! The crate's one error type.
//!
//! Every error that comes from a file names that file; handshake errors carry
//! rustls' own reason (an alert sent or received, a certificate problem, a
//! protocol violation) and, when known, the peer address.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong, without the details. Stable enough to count in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configured file does not exist.
    FileMissing,
    /// A configured file exists but could not be read (permissions, a directory...).
    FileUnreadable,
    /// The file has a malformed PEM section (bad base64, missing END line...).
    BadPem,
    /// A certificate file holds no `CERTIFICATE` PEM section.
    NoCertificate,
    /// A key file holds no private key PEM section (PKCS#8, PKCS#1 or SEC1).
    NoPrivateKey,
    /// The private key is of a type or form the crypto provider cannot use.
    UnsupportedKey,
    /// A certificate's DER could not be parsed.
    InvalidCertificate,
    /// A certificate's `notAfter` is in the past.
    Expired,
    /// A certificate's `notBefore` is in the future.
    NotYetValid,
    /// The private key does not belong to the first certificate of the chain.
    KeyMismatch,
    /// A CA bundle holds no usable certificate.
    EmptyCaBundle,
    /// A configuration that cannot be built (no certificates given, invalid
    /// server name, verifier construction failure...).
    Config,
    /// The TLS handshake failed (protocol error, alert, certificate refused).
    Handshake,
    /// The transport failed or closed during the handshake.
    Io,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::FileMissing => "file not found",
            ErrorKind::FileUnreadable => "file unreadable",
            ErrorKind::BadPem => "malformed PEM",
            ErrorKind::NoCertificate => "no PEM certificate found",
            ErrorKind::NoPrivateKey => "no PEM private key found",
            ErrorKind::UnsupportedKey => "unsupported private key",
            ErrorKind::InvalidCertificate => "invalid certificate",
            ErrorKind::Expired => "certificate expired",
            ErrorKind::NotYetValid => "certificate not yet valid",
            ErrorKind::KeyMismatch => "private key does not match certificate",
            ErrorKind::EmptyCaBundle => "CA bundle holds no certificate",
            ErrorKind::Config => "invalid TLS configuration",
            ErrorKind::Handshake => "TLS handshake failed",
            ErrorKind::Io => "I/O error during TLS handshake",
        }
    }
}

/// The error type of every fallible function in this crate.
///
/// `Display` reads `<file>: <problem>[: <detail>]` for file errors and
/// `<problem>[ with <peer>]: <detail>` otherwise.
pub struct TlsError {
    kind: ErrorKind,
    path: Option<PathBuf>,
    detail: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TlsError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> TlsError {
        TlsError {
            kind,
            path: None,
            detail: detail.into(),
            source: None,
        }
    }

    pub(crate) fn file(kind: ErrorKind, path: &Path, detail: impl Into<String>) -> TlsError {
        TlsError {
            kind,
            path: Some(path.to_path_buf()),
            detail: detail.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> TlsError {
        self.source = Some(Box::new(source));
        self
    }

    /// An error reading `path` from the file system.
    pub(crate) fn read(path: &Path, err: io::Error) -> TlsError {
        let kind = match err.kind() {
            io::ErrorKind::NotFound => ErrorKind::FileMissing,
            _ => ErrorKind::FileUnreadable,
        };
        let detail = if kind == ErrorKind::FileMissing {
            String::new()
        } else {
            err.to_string()
        };
        TlsError::file(kind, path, detail).with_source(err)
    }

    /// A failed handshake: rustls errors become [`ErrorKind::Handshake`], the
    /// rest [`ErrorKind::Io`].
    pub(crate) fn handshake(err: io::Error, peer: Option<std::net::SocketAddr>) -> TlsError {
        let peer = peer.map(|p| format!(" with {p}")).unwrap_or_default();
        let is_tls = err.get_ref().is_some_and(|e| e.is::<rustls::Error>());
        let kind = if is_tls {
            ErrorKind::Handshake
        } else {
            ErrorKind::Io
        };
        let mut e = TlsError::new(kind, format!("{peer}: {err}"));
        e.source = Some(match err.get_ref() {
            // Keep the rustls error itself, so `rustls_error` can find it.
            Some(_) => err.into_inner().expect("checked by get_ref"),
            None => Box::new(err),
        });
        e
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The rustls error behind a handshake or configuration failure, if any
    /// (for example `rustls::Error::AlertReceived(..)`).
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.source.as_ref()?.downcast_ref::<rustls::Error>()
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(self.kind.describe())?;
        if self.detail.is_empty() {
            Ok(())
        } else if self.detail.starts_with([' ', ':']) {
            f.write_str(&self.detail)
        } else {
            write!(f, ": {}", self.detail)
        }
    }
}

impl fmt::Debug for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsError")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("message", &self.to_string())
            .finish()
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        let kind = match e.kind {
            ErrorKind::FileMissing => io::ErrorKind::NotFound,
            ErrorKind::Io => io::ErrorKind::ConnectionAborted,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
