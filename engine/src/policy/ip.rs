//! IP rules: allow and deny lists of CIDRs per route, and the client address
//! behind trusted proxies (`[server] trusted_proxies`).
//!
//! Control plane: [`compile`] parses the lists. Data plane: [`IpRules::allows`]
//! and [`client_ip`] scan short lists of prefixes; nothing allocates.

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::header::{Kind, trim_ows};
use crate::h1::request::RequestHead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::ControlFlow;

/// One prefix, IPv4 or IPv6, held as a 128-bit network and mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    v4: bool,
    net: u128,
    mask: u128,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
    /// Host bits set below the prefix are an error: they usually mean a typo.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr.trim().parse().map_err(|_| {
            format!("{s:?} is not a CIDR: write e.g. \"10.0.0.0/8\", \"2001:db8::/32\" or a single address")
        })?;
        let (v4, bits, max) = match ip {
            IpAddr::V4(a) => (true, u128::from(u32::from(a)), 32u32),
            IpAddr::V6(a) => (false, u128::from(a), 128u32),
        };
        let len = match len {
            None => max,
            Some(l) => match l.trim().parse::<u32>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        // Client addresses are canonical (IPv4-mapped IPv6 as IPv4): so are prefixes.
        let (v4, bits, max, len) = match ip {
            IpAddr::V6(a) if len >= 96 && a.to_ipv4_mapped().is_some() => {
                (true, bits & u128::from(u32::MAX), 32, len - 96)
            }
            _ => (v4, bits, max, len),
        };
        let mask = if len == 0 {
            0
        } else {
            (u128::MAX << (max - len)) & (u128::MAX >> (128 - max))
        };
        if bits & !mask != 0 {
            let net = bits & mask;
            let shown = if v4 {
                IpAddr::V4(Ipv4Addr::from(net as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(net))
            };
            return Err(format!(
                "{s:?} has host bits set below /{len}: did you mean \"{shown}/{len}\"?"
            ));
        }
        Ok(Cidr {
            v4,
            net: bits,
            mask,
        })
    }

    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4 && u128::from(u32::from(a)) & self.mask == self.net,
            IpAddr::V6(a) => !self.v4 && u128::from(a) & self.mask == self.net,
        }
    }
}

/// A list of prefixes; an address matches if any contains it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrSet(Vec<Cidr>);

impl CidrSet {
    /// Parses every entry; the error names the index of the first bad one.
    pub fn parse(list: &[toml::Spanned<String>], key: &str) -> Result<CidrSet, Problem> {
        let mut v = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            match Cidr::parse(s.get_ref()) {
                Ok(c) => v.push(c),
                Err(m) => return Err(Problem::new(s.span(), format!("{key}[{i}]"), m)),
            }
        }
        Ok(CidrSet(v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// IPv4-mapped IPv6 addresses must be canonical (`to_canonical`) before asking.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// `[route.ip]`: deny wins over allow; an empty allow list allows everyone not denied.
#[derive(Debug, PartialEq, Eq)]
pub struct IpRules {
    allow: CidrSet,
    deny: CidrSet,
}

/// Control plane: `[route.ip]` → [`IpRules`].
pub fn compile(t: &model::IpPolicy) -> Result<IpRules, Problem> {
    let allow = CidrSet::parse(&t.allow, "allow")?;
    let deny = CidrSet::parse(&t.deny, "deny")?;
    Ok(IpRules { allow, deny })
}

impl Policy for IpRules {
    type Table = model::IpPolicy;
    type Local = ();

    fn compile(t: &model::IpPolicy, _: &Compile<'_>) -> Result<IpRules, Problem> {
        compile(t)
    }

    fn check<'c>(&'c self, cx: &mut Check<'_>, _: Option<&mut ()>) -> ControlFlow<Verdict<'c>> {
        if self.allows(cx.client) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(Verdict::Reject(403, "client address not allowed"))
        }
    }

    fn uses_client_ip(&self) -> bool {
        true
    }
}

impl IpRules {
    /// Data plane: whether `client` may use the route.
    #[inline]
    pub fn allows(&self, client: IpAddr) -> bool {
        !self.deny.contains(client) && (self.allow.is_empty() || self.allow.contains(client))
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy; then
/// X-Forwarded-For is read from its last hop backwards, skipping trusted
/// proxies, and the first untrusted hop is the client. A hop that is not an
/// address stops the walk at the nearest trusted one (never at a forged value).
pub fn client_ip(peer: IpAddr, trusted: &CidrSet, buf: &[u8], head: &RequestHead) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    for h in head
        .headers
        .iter()
        .rev()
        .filter(|h| h.kind == Kind::XForwardedFor)
    {
        for hop in h.value.get(buf).rsplit(|&b| b == b',') {
            let hop = trim_ows(hop);
            if hop.is_empty() {
                continue;
            }
            match parse_hop(hop) {
                Some(ip) if trusted.contains(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
    }
    client
}

/// An X-Forwarded-For element: `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443`, `1.2.3.4:80`.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(hop).ok()?;
    let ip = match s.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match s.parse::<SocketAddr>() {
            Ok(a) => a.ip(),
            Err(_) => s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?,
        },
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_match_v4_and_v6() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.1/32", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "::1", true),
            ("::1", "::1", true),
            ("::ffff:10.0.0.0/104", "10.1.2.3", true),
        ];
        for (cidr, addr, want) in cases {
            let c = Cidr::parse(cidr).unwrap();
            assert_eq!(c.contains(ip(addr)), *want, "{cidr} ∋ {addr}");
        }
    }

    #[test]
    fn bad_cidrs_are_refused_with_a_reason() {
        for (bad, says) in [
            ("10.0.0.1/8", "did you mean \"10.0.0.0/8\""),
            ("10.0.0.0/33", "0 to 32"),
            ("2001:db8::/129", "0 to 128"),
            ("10.0.0/8", "not a CIDR"),
            ("", "not a CIDR"),
        ] {
            let e = Cidr::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn deny_wins_and_empty_allow_allows_all() {
        let set = |v: &[&str]| CidrSet(v.iter().map(|s| Cidr::parse(s).unwrap()).collect());
        let r = IpRules {
            allow: set(&["10.0.0.0/8"]),
            deny: set(&["10.0.0.5"]),
        };
        assert!(r.allows(ip("10.0.0.4")));
        assert!(!r.allows(ip("10.0.0.5")));
        assert!(!r.allows(ip("192.168.0.1")));
        let open = IpRules {
            allow: CidrSet::default(),
            deny: set(&["192.168.0.0/16"]),
        };
        assert!(open.allows(ip("10.0.0.4")));
        assert!(!open.allows(ip("192.168.3.3")));
    }

    #[test]
    fn client_ip_walks_forwarded_for_past_trusted_proxies() {
        let trusted = CidrSet(vec![
            Cidr::parse("127.0.0.1").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ]);
        let cases: &[(&str, &str, &str)] = &[
            // (peer, X-Forwarded-For header lines, client)
            ("127.0.0.1", "", "127.0.0.1"),
            ("127.0.0.1", "X-Forwarded-For: 1.2.3.4\r\n", "1.2.3.4"),
            (
                "127.0.0.1",
                "X-Forwarded-For: 6.6.6.6, 1.2.3.4\r\n",
                "1.2.3.4",
            ),
            (
                "127.0.0.1",
                "X-Forwarded-For: 6.6.6.6, 1.2.3.4, 10.1.1.1\r\n",
                "1.2.3.4",
            ),
            (
                "127.0.0.1",
                "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 2001:db8::7\r\n",
                "2001:db8::7",
            ),
            ("127.0.0.1", "X-Forwarded-For: junk\r\n", "127.0.0.1"),
            (
                "127.0.0.1",
                "X-Forwarded-For: 10.2.2.2, junk\r\n",
                "127.0.0.1",
            ),
            (
                "127.0.0.1",
                "X-Forwarded-For: [2001:db8::9]:443\r\n",
                "2001:db8::9",
            ),
            // An untrusted peer's header is ignored.
            ("192.0.2.1", "X-Forwarded-For: 1.2.3.4\r\n", "192.0.2.1"),
        ];
        for (peer, xff, want) in cases {
            let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{xff}\r\n");
            let mut head = request::RequestHead::default();
            assert_eq!(
                request::parse(raw.as_bytes(), &Limits::default(), &mut head),
                Ok(true)
            );
            let got = client_ip(ip(peer), &trusted, raw.as_bytes(), &head);
            assert_eq!(got, ip(want), "{peer} with {xff:?}");
        }
    }
}
