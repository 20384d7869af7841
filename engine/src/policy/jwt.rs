//! `[route.jwt]`: a JWT authorizer as in API Gateway HTTP APIs. The token
//! comes from `Authorization: Bearer` (or another header, or a cookie); its
//! signature is checked with `ring` against keys from a JWKS file (HS256,
//! RS256, ES256, EdDSA; the token's `alg` must be the key's, and `none` is
//! never accepted); then `exp` (required), `nbf`, `iss`, `aud` with a
//! leeway, and the route's required scopes (`scope` or `scp`). Failure: 401
//! with `WWW-Authenticate` (403 for a valid token without the scopes); the
//! request is never forwarded. Chosen claims can be forwarded upstream as
//! header fields; a client's own fields of those names are dropped.

use super::Problem;
use crate::config::model;
use crate::h1::request::RequestHead;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Hs256,
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    fn parse(s: &str) -> Option<Alg> {
        match s {
            "HS256" => Some(Alg::Hs256),
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

enum Material {
    Hmac(ring::hmac::Key),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed P-256 point (0x04 ‖ x ‖ y).
    Ec(Vec<u8>),
    Ed(Vec<u8>),
}

struct Key {
    kid: Option<String>,
    alg: Alg,
    material: Material,
}

impl Key {
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(k) => ring::hmac::verify(k, message, sig).is_ok(),
            Material::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            Material::Ec(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Material::Ed(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
        }
    }
}

/// Where the token is read from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// `NAME: Bearer <token>` (lower-case name).
    Bearer(Box<[u8]>),
    /// The cookie of this name.
    Cookie(Box<[u8]>),
}

pub struct Jwt {
    source: Source,
    keys: Vec<Key>,
    issuer: Option<String>,
    audience: Vec<String>,
    scopes: Vec<String>,
    leeway: u64,
    /// (claim, lower-case header name) pairs.
    forward: Vec<(String, Box<[u8]>)>,
    /// The header names of `forward`, for the upstream head writer to drop.
    forward_names: Vec<Box<[u8]>>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("source", &self.source)
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Control plane: `[route.jwt]` → [`Jwt`]; `base` is the config file's folder.
pub fn compile(t: &model::Jwt, base: &Path) -> Result<Jwt, Problem> {
    if let Some(u) = &t.jwks_url {
        return Err(Problem::new(
            u.span(),
            "jwks_url",
            "JWKS URLs are not supported yet: save the key set to a file and use `jwks_file`",
        ));
    }
    let Some(file) = &t.jwks_file else {
        return Err(Problem::new(
            0..0,
            "jwks_file",
            "a JWT authorizer needs `jwks_file`",
        ));
    };
    let path = base.join(file.get_ref());
    let at = |m: String| Problem::new(file.span(), "jwks_file", m);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
    let keys = parse_jwks(&text).map_err(|m| at(format!("{}: {m}", path.display())))?;
    let source = match t.source.as_ref().map(|s| s.get_ref().as_str()) {
        None => Source::Bearer(b"authorization".as_slice().into()),
        Some(s) => match s.split_once(':') {
            Some(("header", n)) if super::throttle::is_token(n) => {
                Source::Bearer(n.to_ascii_lowercase().into_bytes().into())
            }
            Some(("cookie", n)) if super::throttle::is_token(n) => {
                Source::Cookie(n.as_bytes().into())
            }
            _ => {
                let span = t.source.as_ref().map(|s| s.span()).unwrap_or_default();
                return Err(Problem::new(
                    span,
                    "source",
                    format!("unknown token source {s:?}: use \"header:NAME\" or \"cookie:NAME\""),
                ));
            }
        },
    };
    let mut forward: Vec<(String, Box<[u8]>)> = Vec::new();
    if let Some(f) = &t.forward_claims {
        for (claim, header) in f.get_ref() {
            if !super::throttle::is_token(header) {
                return Err(Problem::new(
                    f.span(),
                    format!("forward_claims.{claim}"),
                    format!("{header:?} is not a header name"),
                ));
            }
            forward.push((
                claim.clone(),
                header.to_ascii_lowercase().into_bytes().into(),
            ));
        }
    }
    Ok(Jwt {
        source,
        keys,
        issuer: t.issuer.clone(),
        audience: t.audience.clone(),
        scopes: t.scopes.clone(),
        leeway: t.leeway.map_or(60, |d| d.0.as_secs()),
        forward_names: forward.iter().map(|(_, n)| n.clone()).collect(),
        forward,
    })
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

fn parse_jwks(text: &str) -> Result<Vec<Key>, String> {
    let set: Jwks = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    if set.keys.is_empty() {
        return Err("the key set has no keys".into());
    }
    let mut keys = Vec::new();
    for (i, k) in set.keys.into_iter().enumerate() {
        let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
            let v = v
                .as_deref()
                .ok_or_else(|| format!("key {i} ({}) has no `{name}`", k.kty))?;
            b64url(v.as_bytes()).ok_or_else(|| format!("key {i}: `{name}` is not base64url"))
        };
        let (inferred, material) = match (k.kty.as_str(), k.crv.as_deref()) {
            ("RSA", _) => (
                Alg::Rs256,
                Material::Rsa {
                    n: field(&k.n, "n")?,
                    e: field(&k.e, "e")?,
                },
            ),
            ("EC", Some("P-256")) => {
                let (x, y) = (field(&k.x, "x")?, field(&k.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(format!("key {i}: a P-256 point has 32-byte x and y"));
                }
                let mut p = vec![4u8];
                p.extend_from_slice(&x);
                p.extend_from_slice(&y);
                (Alg::Es256, Material::Ec(p))
            }
            ("OKP", Some("Ed25519")) => (Alg::EdDsa, Material::Ed(field(&k.x, "x")?)),
            ("oct", _) => (
                Alg::Hs256,
                Material::Hmac(ring::hmac::Key::new(
                    ring::hmac::HMAC_SHA256,
                    &field(&k.k, "k")?,
                )),
            ),
            (kty, crv) => {
                return Err(format!(
                    "key {i}: unsupported key type {kty:?}{} (RSA, EC P-256, OKP Ed25519 and oct are)",
                    crv.map(|c| format!(" / curve {c:?}")).unwrap_or_default()
                ));
            }
        };
        let alg = match k.alg.as_deref() {
            None => inferred,
            Some(a) => match Alg::parse(a) {
                Some(a) if a == inferred => a,
                _ => {
                    return Err(format!(
                        "key {i}: algorithm {a:?} is not supported for this key (HS256, RS256, ES256, EdDSA are)"
                    ));
                }
            },
        };
        keys.push(Key {
            kid: k.kid,
            alg,
            material,
        });
    }
    Ok(keys)
}

/// Decodes unpadded (or padded) base64url.
pub fn b64url(s: &[u8]) -> Option<Vec<u8>> {
    let s = match s.iter().position(|&b| b == b'=') {
        Some(p) if s[p..].iter().all(|&b| b == b'=') && s.len().is_multiple_of(4) => &s[..p],
        Some(_) => return None,
        None => s,
    };
    let val = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            n |= val(b)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Why a token is refused: the status, and the message of the JSON body.
pub type Refusal = (u16, &'static str);

const INVALID: Refusal = (401, "invalid token");

impl Jwt {
    /// Data plane: checks the request's token at wall-clock second `now`.
    /// On success, appends the forwarded claims as upstream field lines to
    /// `upstream` (claims holding control characters refuse the token).
    pub fn check(
        &self,
        buf: &[u8],
        head: &RequestHead,
        now: u64,
        upstream: &mut Vec<u8>,
    ) -> Result<(), Refusal> {
        let token = self.token(buf, head).ok_or((401, "missing token"))?;
        let mut parts = token.split(|&b| b == b'.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(INVALID);
        };
        let header: Header = b64url(h)
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or(INVALID)?;
        let alg = Alg::parse(&header.alg).ok_or(INVALID)?;
        let sig = b64url(s).ok_or(INVALID)?;
        let signed = &token[..h.len() + 1 + p.len()];
        let verified = self
            .keys
            .iter()
            .filter(|k| k.alg == alg)
            .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
            .any(|k| k.verify(signed, &sig));
        if !verified {
            return Err(INVALID);
        }
        let claims: serde_json::Map<String, serde_json::Value> = b64url(p)
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or(INVALID)?;
        let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64);
        let exp = number("exp").ok_or(INVALID)?;
        if (now as f64) > exp + self.leeway as f64 {
            return Err((401, "token expired"));
        }
        if let Some(nbf) = number("nbf")
            && (now as f64) + (self.leeway as f64) < nbf
        {
            return Err((401, "token not yet valid"));
        }
        if let Some(iss) = &self.issuer
            && claims.get("iss").and_then(|v| v.as_str()) != Some(iss.as_str())
        {
            return Err(INVALID);
        }
        if !self.audience.is_empty() {
            let aud: Option<OneOrMany> = claims
                .get("aud")
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            let ok = match aud {
                Some(OneOrMany::One(a)) => self.audience.contains(&a),
                Some(OneOrMany::Many(v)) => v.iter().any(|a| self.audience.contains(a)),
                None => false,
            };
            if !ok {
                return Err(INVALID);
            }
        }
        if !self.scopes.is_empty() {
            let has = |want: &str| match (claims.get("scope"), claims.get("scp")) {
                (Some(serde_json::Value::String(s)), _) => s.split(' ').any(|x| x == want),
                (_, Some(serde_json::Value::Array(v))) => {
                    v.iter().any(|x| x.as_str() == Some(want))
                }
                (_, Some(serde_json::Value::String(s))) => s.split(' ').any(|x| x == want),
                _ => false,
            };
            if !self.scopes.iter().all(|s| has(s)) {
                return Err((403, "insufficient scope"));
            }
        }
        for (claim, name) in &self.forward {
            let value = match claims.get(claim) {
                None | Some(serde_json::Value::Null) => continue,
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(INVALID);
            }
            upstream.extend_from_slice(name);
            upstream.extend_from_slice(b": ");
            upstream.extend_from_slice(value.as_bytes());
            upstream.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    /// The header names forwarded claims are written to (a client's own are dropped).
    pub fn forwarded_names(&self) -> &[Box<[u8]>] {
        &self.forward_names
    }

    fn token<'b>(&self, buf: &'b [u8], head: &RequestHead) -> Option<&'b [u8]> {
        match &self.source {
            Source::Bearer(name) => {
                let v = super::cors::field(buf, head, name)?;
                let v = crate::h1::header::trim_ows(v);
                (v.len() > 7 && v[..7].eq_ignore_ascii_case(b"bearer "))
                    .then(|| crate::h1::header::trim_ows(&v[7..]))
                    .filter(|t| !t.is_empty())
            }
            Source::Cookie(name) => head
                .headers
                .iter()
                .filter(|h| h.name.get(buf).eq_ignore_ascii_case(b"cookie"))
                .flat_map(|h| h.value.get(buf).split(|&b| b == b';'))
                .find_map(|pair| {
                    let pair = crate::h1::header::trim_ows(pair);
                    let eq = pair.iter().position(|&b| b == b'=')?;
                    (pair[..eq] == **name).then_some(&pair[eq + 1..])
                })
                .filter(|t| !t.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{Limits, request};

    fn b64(data: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut s = String::new();
        for c in data.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..=c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        s
    }

    #[test]
    fn base64url_round_trips() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64url(b64(&data).as_bytes()), Some(data));
        }
        assert_eq!(b64url(b"aGk="), Some(b"hi".to_vec()));
        assert_eq!(b64url(b"a"), None);
        assert_eq!(b64url(b"a+b/"), None);
    }

    fn hs_jwt(secret: &[u8], header: &str, claims: &str) -> String {
        let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, signed.as_bytes());
        format!("{signed}.{}", b64(tag.as_ref()))
    }

    fn authorizer(extra: &str) -> Jwt {
        let dir = std::env::temp_dir().join(format!("ringway-jwt-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwks = format!(
            "{{\"keys\":[{{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"{}\"}}]}}",
            b64(b"secret")
        );
        std::fs::write(dir.join("jwks.json"), jwks).unwrap();
        let t: model::Jwt = toml::from_str(&format!(
            "issuer = \"https://issuer.example.com\"\naudience = [\"api\"]\njwks_file = \"jwks.json\"\nscopes = [\"read:users\"]\nforward_claims = {{ sub = \"x-user-id\" }}\n{extra}"
        ))
        .unwrap();
        compile(&t, &dir).unwrap()
    }

    fn check(j: &Jwt, token: &str) -> Result<String, Refusal> {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n\r\n");
        let mut head = request::RequestHead::default();
        assert_eq!(
            request::parse(raw.as_bytes(), &Limits::default(), &mut head),
            Ok(true)
        );
        let mut up = Vec::new();
        j.check(raw.as_bytes(), &head, 1_000_000, &mut up)
            .map(|()| String::from_utf8(up).unwrap())
    }

    #[test]
    fn hs256_tokens_and_their_claims() {
        let j = authorizer("");
        let h = r#"{"alg":"HS256","kid":"h1"}"#;
        let good = r#"{"iss":"https://issuer.example.com","aud":["api","x"],"exp":1000100,"scope":"read:users write","sub":"u-7"}"#;
        assert_eq!(
            check(&j, &hs_jwt(b"secret", h, good)),
            Ok("x-user-id: u-7\r\n".into())
        );
        let cases: &[(&str, &str, &[u8], Refusal)] = &[
            (h, good, b"wrong", INVALID),
            (r#"{"alg":"none"}"#, good, b"secret", INVALID),
            (r#"{"alg":"HS512"}"#, good, b"secret", INVALID),
            (r#"{"alg":"HS256","kid":"other"}"#, good, b"secret", INVALID),
            (
                h,
                r#"{"iss":"https://issuer.example.com","aud":"api","exp":999000,"scope":"read:users"}"#,
                b"secret",
                (401, "token expired"),
            ),
            (
                h,
                r#"{"iss":"https://issuer.example.com","aud":"api","exp":1000100,"nbf":1000500,"scope":"read:users"}"#,
                b"secret",
                (401, "token not yet valid"),
            ),
            (
                h,
                r#"{"iss":"https://evil","aud":"api","exp":1000100,"scope":"read:users"}"#,
                b"secret",
                INVALID,
            ),
            (
                h,
                r#"{"iss":"https://issuer.example.com","aud":"web","exp":1000100,"scope":"read:users"}"#,
                b"secret",
                INVALID,
            ),
            (
                h,
                r#"{"iss":"https://issuer.example.com","aud":"api","scope":"read:users"}"#,
                b"secret",
                INVALID,
            ),
            (
                h,
                r#"{"iss":"https://issuer.example.com","aud":"api","exp":1000100,"scope":"write"}"#,
                b"secret",
                (403, "insufficient scope"),
            ),
            (
                h,
                r#"{"iss":"https://issuer.example.com","aud":"api","exp":1000100,"scope":"read:users","sub":"a\r\nx-admin: 1"}"#,
                b"secret",
                INVALID,
            ),
        ];
        for (header, claims, secret, want) in cases {
            assert_eq!(
                check(&j, &hs_jwt(secret, header, claims)),
                Err(*want),
                "{header} {claims}"
            );
        }
        // Within the leeway (60 s by default) an expired token still passes.
        let late =
            r#"{"iss":"https://issuer.example.com","aud":"api","exp":999950,"scp":["read:users"]}"#;
        assert!(check(&j, &hs_jwt(b"secret", h, late)).is_ok());
        assert_eq!(check(&j, "a.b"), Err(INVALID));
        assert_eq!(check(&j, "a.b.c.d"), Err(INVALID));
    }

    #[test]
    fn jwks_errors_say_what_is_wrong() {
        for (text, says) in [
            ("{}", "not a JWKS document"),
            ("{\"keys\":[]}", "no keys"),
            (
                "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                "unsupported key type",
            ),
            ("{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", "no `n`"),
            (
                "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\",\"alg\":\"RS256\"}]}",
                "not supported for this key",
            ),
        ] {
            let e = parse_jwks(text).err().unwrap();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
