//! Target URLs: parsed once at startup, resolved once, then shared read-only
//! by every worker.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

/// One URL to load, parsed and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as the user wrote it (for messages).
    pub url: String,
    /// `true` for `https://`.
    pub tls: bool,
    /// Host name or IP literal, without brackets.
    pub host: String,
    pub port: u16,
    /// Request target: path plus query, never empty (`/` at least).
    pub path: String,
    /// Value of the `Host` header (`host` or `host:port`).
    pub authority: String,
}

/// Why a URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid URL '{}': {}", self.url, self.reason)
    }
}

impl std::error::Error for UrlError {}

impl Target {
    /// Parses `http://host[:port][/path][?query]` or the `https://` form.
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let err = |reason| UrlError {
            url: url.to_string(),
            reason,
        };
        let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(url, "https://") {
            (true, rest)
        } else {
            return Err(err("scheme must be http:// or https://"));
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            return Err(err("user information is not supported"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| err("bad host or port"))?;
        if host.is_empty() {
            return Err(err("missing host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| err("bad port"))?,
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(err("path contains spaces or control characters"));
        }
        let path = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        let host_in_header = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let authority = if port == default_port {
            host_in_header
        } else {
            format!("{host_in_header}:{port}")
        };
        Ok(Target {
            url: url.to_string(),
            tls,
            host: host.to_string(),
            port,
            path,
            authority,
        })
    }

    /// Resolves the host (blocking; done once at startup), in the
    /// resolver's order.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "host resolved to no address",
            ));
        }
        Ok(addrs)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &rest[..close];
        match &rest[close + 1..] {
            "" => Some((host, None)),
            tail => Some((host, Some(tail.strip_prefix(':')?))),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => None,
            Some((h, p)) => Some((h, Some(p))),
            None => Some((authority, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let cases: &[(&str, bool, &str, u16, &str, &str)] = &[
            (
                "http://127.0.0.1:8080/a?b=1",
                false,
                "127.0.0.1",
                8080,
                "/a?b=1",
                "127.0.0.1:8080",
            ),
            (
                "http://example.com",
                false,
                "example.com",
                80,
                "/",
                "example.com",
            ),
            (
                "HTTPS://example.com/x",
                true,
                "example.com",
                443,
                "/x",
                "example.com",
            ),
            (
                "https://example.com:8443?q",
                true,
                "example.com",
                8443,
                "/?q",
                "example.com:8443",
            ),
            ("http://[::1]:9/p#frag", false, "::1", 9, "/p", "[::1]:9"),
        ];
        for &(url, tls, host, port, path, authority) in cases {
            let t = Target::parse(url).unwrap();
            assert_eq!((t.tls, t.host.as_str(), t.port), (tls, host, port), "{url}");
            assert_eq!(
                (t.path.as_str(), t.authority.as_str()),
                (path, authority),
                "{url}"
            );
        }
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "ftp://x",
            "localhost:80",
            "http://",
            "http://h:0",
            "http://h:99999",
            "http://h:x/",
            "http://u@h/",
            "http://h/a b",
            "http://::1/",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }
}
