//! Host selection: exact hosts, `*.suffix` wildcards, then the default table.
//!
//! Hosts compare ASCII case-insensitively; the request's port (`:8080`, also
//! after an IPv6 literal `[::1]:8080`) and a trailing `.` are ignored. An exact
//! host beats any wildcard and a longer wildcard suffix beats a shorter one.
//! When a host table matches, only its routes are considered; the default
//! table (routes without a host) serves only hosts no table claims.

use std::cmp::Ordering;

/// A validated, lower-cased host pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostPattern {
    Exact(Box<str>),
    /// The suffix including its leading dot: `.example.com`.
    Wildcard(Box<str>),
}

impl HostPattern {
    /// Parses `api.example.com`, `*.example.com`, `10.0.0.1` or `[::1]`.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let lower = text.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        if let Some(suffix) = lower.strip_prefix("*.") {
            check_name(suffix).map_err(|e| format!("host {text:?}: {e}"))?;
            return Ok(HostPattern::Wildcard(format!(".{suffix}").into()));
        }
        if let Some(inner) = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if inner.is_empty()
                || !inner
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err(format!("host {text:?}: not an IPv6 literal"));
            }
            return Ok(HostPattern::Exact(lower.into()));
        }
        check_name(lower).map_err(|e| format!("host {text:?}: {e}"))?;
        Ok(HostPattern::Exact(lower.into()))
    }

    pub fn as_text(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.to_string(),
            HostPattern::Wildcard(s) => format!("*{s}"),
        }
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.contains(':') {
        return Err("a host pattern takes no port".into());
    }
    if name.is_empty() || name.split('.').any(|label| label.is_empty()) {
        return Err("empty label".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
    {
        return Err(format!("{c:?} is not allowed in a host name"));
    }
    Ok(())
}

/// The host part of a `Host` header value: port and trailing dot removed.
pub(crate) fn host_name(header: &[u8]) -> &[u8] {
    let host = if header.first() == Some(&b'[') {
        match header.iter().position(|&b| b == b']') {
            Some(i) => &header[..=i],
            None => header,
        }
    } else {
        match header.iter().rposition(|&b| b == b':') {
            Some(i) => &header[..i],
            None => header,
        }
    };
    host.strip_suffix(b".").unwrap_or(host)
}

fn cmp_ignore_case(lower: &[u8], other: &[u8]) -> Ordering {
    let a = lower.iter().copied();
    let b = other.iter().map(u8::to_ascii_lowercase);
    a.cmp(b)
}

/// Maps a request host to a table index.
#[derive(Debug, Default)]
pub(crate) struct HostTable {
    /// Sorted by host.
    exact: Vec<(Box<[u8]>, u32)>,
    /// Longest suffix first.
    wildcard: Vec<(Box<[u8]>, u32)>,
    default: Option<u32>,
}

impl HostTable {
    /// Builds from (pattern or default, table index) pairs, each pattern once.
    pub fn new(tables: impl IntoIterator<Item = (Option<HostPattern>, u32)>) -> Self {
        let mut t = HostTable::default();
        for (pattern, idx) in tables {
            match pattern {
                None => t.default = Some(idx),
                Some(HostPattern::Exact(h)) => t.exact.push((h.as_bytes().into(), idx)),
                Some(HostPattern::Wildcard(s)) => t.wildcard.push((s.as_bytes().into(), idx)),
            }
        }
        t.exact.sort();
        t.wildcard
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        t
    }

    /// The table for a request's `Host` (`None`: no header, default table).
    pub fn select(&self, host: Option<&[u8]>) -> Option<u32> {
        let Some(host) = host else {
            return self.default;
        };
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return self.default;
        }
        let host = host_name(host);
        if let Ok(i) = self
            .exact
            .binary_search_by(|(h, _)| cmp_ignore_case(h, host))
        {
            return Some(self.exact[i].1);
        }
        for (suffix, idx) in &self.wildcard {
            if host.len() > suffix.len()
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            {
                return Some(*idx);
            }
        }
        self.default
    }

    /// Table indices in precedence order: exact, wildcards, default.
    pub fn order(&self) -> impl Iterator<Item = u32> {
        let exact = self.exact.iter().map(|e| e.1);
        exact
            .chain(self.wildcard.iter().map(|w| w.1))
            .chain(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_port_and_dot() {
        let table: &[(&[u8], &[u8])] = &[
            (b"api.example.com", b"api.example.com"),
            (b"api.example.com:8080", b"api.example.com"),
            (b"api.example.com.", b"api.example.com"),
            (b"api.example.com.:443", b"api.example.com"),
            (b"[::1]:8080", b"[::1]"),
            (b"[::1]", b"[::1]"),
            (b"10.0.0.1:80", b"10.0.0.1"),
        ];
        for &(header, want) in table {
            assert_eq!(host_name(header), want);
        }
    }

    #[test]
    fn parses_patterns() {
        assert_eq!(
            HostPattern::parse("API.Example.com").unwrap(),
            HostPattern::Exact("api.example.com".into())
        );
        assert_eq!(
            HostPattern::parse("*.example.com").unwrap(),
            HostPattern::Wildcard(".example.com".into())
        );
        assert_eq!(
            HostPattern::parse("[::1]").unwrap(),
            HostPattern::Exact("[::1]".into())
        );
        for bad in [
            "",
            "*.",
            "a..b",
            "a.com:80",
            "a b",
            "*",
            "*.*.a.com",
            "[zz]",
            "a/b",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
