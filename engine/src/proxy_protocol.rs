//! The PROXY protocol (versions 1 and 2), as HAProxy specifies it: a load
//! balancer in front of ringway states the client's address in a header
//! sent before anything else on the connection; ringway can send the same
//! header to upstreams.
//!
//! Parsing is a push parser like the HTTP codec's: [`parse`] looks at the
//! bytes read so far and says `Ok(None)` (need more), `Ok(Some(header))`
//! (whole, with its length) or `Err` (not a valid header: the connection is
//! closed without a response). Both versions are told apart by their first
//! bytes. No allocation, no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 signature: 12 bytes that cannot start an HTTP request.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A version 1 header is at most 107 bytes, CRLF included.
pub const V1_MAX_LEN: usize = 107;
/// The largest version 2 header accepted (address block and TLVs
/// included). The format allows 64 KiB of TLVs; load balancers send a few
/// dozen bytes, a few hundred with TLS details.
pub const V2_MAX_LEN: usize = 2048;

/// A whole PROXY header at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes the header takes: what follows is the client's first byte.
    pub len: usize,
    /// The client and the address it connected to, when the header names
    /// them; `None` for v1 `UNKNOWN`, v2 `LOCAL` (health checks of the
    /// balancer itself) and v2 address families other than IPv4/IPv6: the
    /// connection's own peer stands.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Why a PROXY header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Neither signature: the peer does not speak the PROXY protocol.
    NoSignature,
    /// A v1 line without CRLF within 107 bytes, or a v2 header over [`V2_MAX_LEN`].
    TooLong,
    /// A v1 line that does not follow the grammar.
    BadV1,
    /// A v2 header with an unknown version, command, family or transport,
    /// or an address block shorter than its family needs.
    BadV2,
}

impl Invalid {
    pub fn as_str(self) -> &'static str {
        match self {
            Invalid::NoSignature => "no PROXY protocol signature",
            Invalid::TooLong => "PROXY protocol header too long",
            Invalid::BadV1 => "malformed PROXY protocol v1 header",
            Invalid::BadV2 => "malformed PROXY protocol v2 header",
        }
    }
}

/// Parses a PROXY header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return if n < V1_PREFIX.len() {
            Ok(None)
        } else {
            parse_v1(buf)
        };
    }
    Err(Invalid::NoSignature)
}

fn parse_v1(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if buf.len() >= V1_MAX_LEN {
            Err(Invalid::TooLong)
        } else {
            Ok(None)
        };
    };
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(Invalid::BadV1),
    }
    let line = &window[b"PROXY ".len()..cr];
    let len = cr + 2;
    if line.starts_with(b"UNKNOWN") && matches!(line.get(7), None | Some(b' ')) {
        return Ok(Some(Header {
            len,
            addresses: None,
        }));
    }
    let mut fields = line.split(|&b| b == b' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Invalid::BadV1);
    };
    let (src, dst) = match proto {
        b"TCP4" => (
            IpAddr::V4(text::<Ipv4Addr>(src)?),
            IpAddr::V4(text::<Ipv4Addr>(dst)?),
        ),
        b"TCP6" => (
            IpAddr::V6(text::<Ipv6Addr>(src)?),
            IpAddr::V6(text::<Ipv6Addr>(dst)?),
        ),
        _ => return Err(Invalid::BadV1),
    };
    Ok(Some(Header {
        len,
        addresses: Some((
            SocketAddr::new(src, port(sport)?),
            SocketAddr::new(dst, port(dport)?),
        )),
    }))
}

fn text<T: std::str::FromStr>(field: &[u8]) -> Result<T, Invalid> {
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Invalid::BadV1)
}

/// A decimal port, 0–65535, without sign or leading zeros.
fn port(field: &[u8]) -> Result<u16, Invalid> {
    let digits = !field.is_empty() && field.len() <= 5 && field.iter().all(u8::is_ascii_digit);
    if !digits || (field.len() > 1 && field[0] == b'0') {
        return Err(Invalid::BadV1);
    }
    text::<u16>(field)
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, Invalid> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(None);
    };
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    let (family, transport) = (fixed[13] >> 4, fixed[13] & 0x0f);
    let body = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
    let len = 16 + body;
    if version != 2 || command > 1 || family > 3 || transport > 2 {
        return Err(Invalid::BadV2);
    }
    if len > V2_MAX_LEN {
        return Err(Invalid::TooLong);
    }
    let need = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body < need {
        return Err(Invalid::BadV2);
    }
    let Some(block) = buf.get(16..len) else {
        return Ok(None);
    };
    // LOCAL: the balancer speaking for itself; UNSPEC/UNIX: no IP to take.
    let addresses = match (command, family) {
        (1, 1 | 2) if transport != 1 => return Err(Invalid::BadV2),
        (1, 1) => {
            let ip = |i: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    block[i],
                    block[i + 1],
                    block[i + 2],
                    block[i + 3],
                ))
            };
            let port = |i: usize| u16::from_be_bytes([block[i], block[i + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        (1, 2) => {
            let ip = |i: usize| {
                let octets: [u8; 16] = block[i..i + 16].try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |i: usize| u16::from_be_bytes([block[i], block[i + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        _ => None,
    };
    Ok(Some(Header { len, addresses }))
}

/// Appends a version 1 header naming `client` → `local` to `out`. Mixed
/// families (an IPv4 client on an IPv6 socket) are written in the client's
/// family, the other address mapped to it.
pub fn write_v1(out: &mut Vec<u8>, client: SocketAddr, local: SocketAddr) {
    use std::io::Write;
    let (client, local) = same_family(client, local);
    let proto = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    let _ = write!(
        out,
        "PROXY {proto} {} {} {} {}\r\n",
        client.ip(),
        local.ip(),
        client.port(),
        local.port()
    );
}

/// Appends a version 2 header (command PROXY, TCP over IPv4 or IPv6, no
/// TLVs) naming `client` → `local` to `out`.
pub fn write_v2(out: &mut Vec<u8>, client: SocketAddr, local: SocketAddr) {
    let (client, local) = same_family(client, local);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    match (client.ip(), local.ip()) {
        (IpAddr::V4(c), IpAddr::V4(l)) => {
            out.extend_from_slice(&[0x11, 0, 12]);
            out.extend_from_slice(&c.octets());
            out.extend_from_slice(&l.octets());
        }
        (c, l) => {
            out.extend_from_slice(&[0x21, 0, 36]);
            out.extend_from_slice(&v6(c).octets());
            out.extend_from_slice(&v6(l).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&local.port().to_be_bytes());
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Both addresses in one family: IPv4-mapped IPv6 addresses become IPv4;
/// if still mixed, both become IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canon = |s: SocketAddr| SocketAddr::new(s.ip().to_canonical(), s.port());
    let (a, b) = (canon(a), canon(b));
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (
            SocketAddr::new(IpAddr::V6(v6(a.ip())), a.port()),
            SocketAddr::new(IpAddr::V6(v6(b.ip())), b.port()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Ok(Some(Header {
                len: 45,
                addresses: Some((addr("192.0.2.7:56324"), addr("198.51.100.1:443")))
            }))
        );
        let h = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n";
        assert_eq!(
            parse(h).unwrap().unwrap().addresses,
            Some((addr("[2001:db8::1]:1"), addr("[2001:db8::2]:65535")))
        );
        for unknown in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
        ] {
            let h = parse(unknown).unwrap().unwrap();
            assert_eq!((h.len, h.addresses), (unknown.len(), None));
        }
    }

    #[test]
    fn v1_refusals() {
        for (bad, why) in [
            (
                &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n"[..],
                Invalid::BadV1,
            ),
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443 9\r\n",
                Invalid::BadV1,
            ),
            (
                b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
                Invalid::BadV1,
            ),
            (b"PROXY TCP6 192.0.2.7 2001:db8::2 1 2\r\n", Invalid::BadV1),
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 443\r\n",
                Invalid::BadV1,
            ),
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 0443 443\r\n",
                Invalid::BadV1,
            ),
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 +1 443\r\n",
                Invalid::BadV1,
            ),
            (
                b"PROXY TCP4  192.0.2.7 198.51.100.1 1 443\r\n",
                Invalid::BadV1,
            ),
            (
                b"PROXY UDP4 192.0.2.7 198.51.100.1 1 443\r\n",
                Invalid::BadV1,
            ),
            (
                b"PROXY TCP4 192.0.2.7 198.51.100.1 1 443\rX",
                Invalid::BadV1,
            ),
            (b"PROXY UNKNOWNX\r\n", Invalid::BadV1),
            (b"GET / HTTP/1.1\r\n\r\n", Invalid::NoSignature),
            (b"proxy TCP4", Invalid::NoSignature),
        ] {
            assert_eq!(parse(bad), Err(why), "{}", String::from_utf8_lossy(bad));
        }
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN, b'x');
        assert_eq!(parse(&long), Err(Invalid::TooLong));
        long.truncate(V1_MAX_LEN - 1);
        assert_eq!(parse(&long), Ok(None));
    }

    #[test]
    fn v2_headers_round_trip_through_the_writer() {
        for (client, local) in [
            ("192.0.2.7:56324", "198.51.100.1:443"),
            ("[2001:db8::1]:1", "[2001:db8::2]:8443"),
            ("[::ffff:192.0.2.9]:7", "127.0.0.1:80"),
        ] {
            let (c, l) = (addr(client), addr(local));
            let want = Some((
                SocketAddr::new(c.ip().to_canonical(), c.port()),
                SocketAddr::new(l.ip().to_canonical(), l.port()),
            ));
            let mut out = Vec::new();
            write_v2(&mut out, c, l);
            let h = parse(&out).unwrap().unwrap();
            assert_eq!((h.len, h.addresses), (out.len(), want));
            out.clear();
            write_v1(&mut out, c, l);
            let h = parse(&out).unwrap().unwrap();
            assert_eq!((h.len, h.addresses), (out.len(), want));
        }
    }

    #[test]
    fn v2_local_and_tlvs() {
        // LOCAL with an (ignored) IPv4 block and a 5-byte TLV after it.
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20, 0x11, 0, 17]);
        h.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2]);
        h.extend_from_slice(&[0x04, 0, 2, b'o', b'k']);
        assert_eq!(
            parse(&h),
            Ok(Some(Header {
                len: 33,
                addresses: None
            }))
        );
        // Every proper prefix asks for more.
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Ok(None), "prefix of {n} bytes");
        }
    }

    #[test]
    fn v2_refusals() {
        let base = {
            let mut h = Vec::new();
            write_v2(&mut h, addr("192.0.2.7:1"), addr("192.0.2.8:2"));
            h
        };
        let with = |i: usize, b: u8| {
            let mut h = base.clone();
            h[i] = b;
            h
        };
        assert_eq!(parse(&with(12, 0x11)), Err(Invalid::BadV2), "version 1");
        assert_eq!(parse(&with(12, 0x22)), Err(Invalid::BadV2), "command 2");
        assert_eq!(parse(&with(13, 0x41)), Err(Invalid::BadV2), "family 4");
        assert_eq!(parse(&with(13, 0x12)), Err(Invalid::BadV2), "UDP");
        assert_eq!(
            parse(&with(15, 11)),
            Err(Invalid::BadV2),
            "short IPv4 block"
        );
        let mut huge = base.clone();
        huge[14..16].copy_from_slice(&(V2_MAX_LEN as u16).to_be_bytes());
        assert_eq!(parse(&huge), Err(Invalid::TooLong));
        assert_eq!(parse(&with(11, b'X')), Err(Invalid::NoSignature));
    }
}
