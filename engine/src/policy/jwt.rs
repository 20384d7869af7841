//! `[route.jwt]`: a JWT authorizer as in API Gateway HTTP APIs. The token
//! comes from `Authorization: Bearer` (or another header, or a cookie); its
//! signature is checked with `ring` against keys from a JWKS file or a JWKS
//! URL refreshed in the background (HS256, RS256, ES256, EdDSA; the token's
//! `alg` must be the key's, and `none` is never accepted); then `exp`
//! (required), `nbf`, `iss`, `aud` with a leeway, and the route's required
//! scopes (`scope` or `scp`). Failure: 401 with `WWW-Authenticate` (403 for
//! a valid token without the scopes); the request is never forwarded.
//! Chosen claims can be forwarded upstream as header fields; a client's own
//! fields of those names are dropped.
//!
//! Each worker keeps a [`Local`] per JWT route: its `Arc` of the current key
//! set and a cache of verified tokens ([`cache`]), cleared when the key set
//! changes. A cached token costs a lookup and the `exp`/`nbf` re-check.

pub mod cache;
pub mod fetch;
pub mod keys;
pub mod remote;

pub use keys::b64url;

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::request::RequestHead;
use keys::{Alg, KeySet};
use remote::RemoteKeys;
use serde::Deserialize;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often a JWKS URL is fetched again, unless `jwks_refresh` says.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);

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
    keys: Keys,
    issuer: Option<String>,
    audience: Vec<String>,
    scopes: Vec<String>,
    leeway: u64,
    /// Keep verified tokens in the worker's [`cache::TokenCache`].
    cache: bool,
    /// (claim, lower-case header name) pairs.
    forward: Vec<(String, Box<[u8]>)>,
    /// The header names of `forward`, for the upstream head writer to drop.
    forward_names: Vec<Box<[u8]>>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("source", &self.source)
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Where the signing keys come from.
enum Keys {
    /// `jwks_file`: read at load (and at every reload).
    File(Arc<KeySet>),
    /// `jwks_url`: fetched and refreshed by a background thread.
    Url(Arc<RemoteKeys>),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::File(set) => write!(f, "File({} keys)", set.len()),
            Keys::Url(r) => write!(f, "Url({:?})", r.url()),
        }
    }
}

/// One worker's view of one JWT route: the key set it verifies with and its
/// verified tokens. Built by [`Jwt::local`]; lives in the worker's policy state.
pub struct Local {
    /// The key set generation `keys` belongs to.
    seen: u64,
    keys: Option<Arc<KeySet>>,
    cache: cache::TokenCache,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("seen", &self.seen)
            .field("keys", &self.keys.as_ref().map(|k| k.len()))
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Local {
    /// Forgets the verified tokens (benchmarks use it to measure a miss).
    pub fn forget_tokens(&mut self) {
        self.cache.clear();
    }
}

impl Policy for Jwt {
    type Table = model::Jwt;
    type Local = Local;

    fn compile(t: &model::Jwt, cx: &Compile<'_>) -> Result<Jwt, Problem> {
        compile(t, cx.base)
    }

    fn check<'c>(
        &'c self,
        cx: &mut Check<'_>,
        local: Option<&mut Local>,
    ) -> ControlFlow<Verdict<'c>> {
        let now = cx.unix();
        // A request from before a reload checks with a throwaway key set and cache.
        let mut spare;
        let local = match local {
            Some(l) => l,
            None => {
                spare = self.new_local();
                &mut spare
            }
        };
        let Err((status, message)) =
            self.authorize(local, cx.req.buf, cx.req.head, now, cx.upstream)
        else {
            return ControlFlow::Continue(());
        };
        cx.fields.extend_from_slice(if status == 403 {
            b"WWW-Authenticate: Bearer error=\"insufficient_scope\"\r\n".as_slice()
        } else if message == "missing token" {
            b"WWW-Authenticate: Bearer\r\n".as_slice()
        } else {
            b"WWW-Authenticate: Bearer error=\"invalid_token\"\r\n".as_slice()
        });
        ControlFlow::Break(Verdict::Reject(status, message))
    }

    /// Verified tokens start over with each snapshot (its key sets may differ).
    fn local(&self, _: Option<Local>) -> Option<Local> {
        Some(self.new_local())
    }

    fn replaced(&self) -> &[Box<[u8]>] {
        self.forwarded_names()
    }

    fn start(&self) {
        self.start_fetch();
    }
}

/// Control plane: `[route.jwt]` → [`Jwt`]; `base` is the config file's folder.
pub fn compile(t: &model::Jwt, base: &Path) -> Result<Jwt, Problem> {
    let keys = compile_keys(t, base)?;
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
        cache: t.cache,
        forward_names: forward.iter().map(|(_, n)| n.clone()).collect(),
        forward,
    })
}

/// `jwks_file`, or `jwks_url` with `jwks_refresh` and `jwks_ca`: exactly one source.
fn compile_keys(t: &model::Jwt, base: &Path) -> Result<Keys, Problem> {
    let url_only = |key: &str, span: std::ops::Range<usize>| {
        Problem::new(span, key, format!("`{key}` goes with `jwks_url` only"))
    };
    match (&t.jwks_file, &t.jwks_url) {
        (Some(_), Some(u)) => Err(Problem::new(
            u.span(),
            "jwks_url",
            "give either `jwks_file` or `jwks_url`, not both",
        )),
        (None, None) => Err(Problem::new(
            0..0,
            "jwks_file",
            "a JWT authorizer needs `jwks_file` or `jwks_url`",
        )),
        (Some(file), None) => {
            if let Some(r) = &t.jwks_refresh {
                return Err(url_only("jwks_refresh", r.span()));
            }
            if let Some(c) = &t.jwks_ca {
                return Err(url_only("jwks_ca", c.span()));
            }
            let path = base.join(file.get_ref());
            let at = |m: String| Problem::new(file.span(), "jwks_file", m);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
            let set =
                keys::parse_jwks(&text).map_err(|m| at(format!("{}: {m}", path.display())))?;
            Ok(Keys::File(Arc::new(set)))
        }
        (None, Some(u)) => {
            let url = fetch::JwksUrl::parse(u.get_ref())
                .map_err(|m| Problem::new(u.span(), "jwks_url", m))?;
            let refresh = match &t.jwks_refresh {
                None => DEFAULT_JWKS_REFRESH,
                Some(r) if r.get_ref().0 < Duration::from_millis(10) => {
                    return Err(Problem::new(
                        r.span(),
                        "jwks_refresh",
                        "the refresh period must be at least 10ms",
                    ));
                }
                Some(r) => r.get_ref().0,
            };
            let (ca, tls) = match &t.jwks_ca {
                Some(c) if !url.tls => {
                    return Err(Problem::new(
                        c.span(),
                        "jwks_ca",
                        "`jwks_ca` is for https:// URLs; this one is http://",
                    ));
                }
                Some(c) => {
                    let path = base.join(c.get_ref());
                    let at = |m: String| Problem::new(c.span(), "jwks_ca", m);
                    let pem = std::fs::read(&path)
                        .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
                    let tls = ringway_tls::client_config(Some(&path), None)
                        .map_err(|e| at(e.to_string()))?;
                    (Some(pem), Some(tls))
                }
                None if url.tls => {
                    let tls = ringway_tls::client_config(None, None)
                        .map_err(|e| Problem::new(u.span(), "jwks_url", e.to_string()))?;
                    (None, Some(tls))
                }
                None => (None, None),
            };
            Ok(Keys::Url(remote::shared(
                url,
                u.get_ref(),
                refresh,
                ca,
                tls,
            )))
        }
    }
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

/// Refused before a JWKS URL has answered once.
const NO_KEYS: Refusal = (401, "signing keys unavailable");

/// A token that passed every check.
struct Verified {
    exp: f64,
    nbf: Option<f64>,
}

impl Jwt {
    /// A worker's state for this route (its key set as of now, an empty cache).
    pub fn new_local(&self) -> Local {
        match &self.keys {
            Keys::File(set) => Local {
                seen: 1,
                keys: Some(set.clone()),
                cache: cache::TokenCache::default(),
            },
            Keys::Url(r) => Local {
                seen: r.generation(),
                keys: r.current(),
                cache: cache::TokenCache::default(),
            },
        }
    }

    /// Control plane: starts the background fetch of a `jwks_url` (once per URL).
    pub fn start_fetch(&self) {
        if let Keys::Url(r) = &self.keys {
            r.start();
        }
    }

    /// The URL key source, if this authorizer has one.
    pub fn remote(&self) -> Option<&Arc<RemoteKeys>> {
        match &self.keys {
            Keys::Url(r) => Some(r),
            Keys::File(_) => None,
        }
    }

    /// Data plane: checks the request's token at wall-clock second `now`,
    /// with the worker's `local` state (key set and verified tokens).
    /// On success, appends the forwarded claims as upstream field lines to
    /// `upstream` (claims holding control characters refuse the token).
    /// A cached token allocates nothing.
    pub fn authorize(
        &self,
        local: &mut Local,
        buf: &[u8],
        head: &RequestHead,
        now: u64,
        upstream: &mut Vec<u8>,
    ) -> Result<(), Refusal> {
        let token = self.token(buf, head).ok_or((401, "missing token"))?;
        if let Keys::Url(r) = &self.keys {
            let g = r.generation();
            if g != local.seen {
                local.keys = r.current();
                local.seen = g;
                local.cache.clear();
            }
        }
        if let Some(e) = local.cache.get(token) {
            let (exp, nbf) = (e.exp, e.nbf);
            if let Err(refusal) = self.check_times(now, exp, nbf) {
                local.cache.remove(token);
                return Err(refusal);
            }
            upstream.extend_from_slice(e.fields());
            return Ok(());
        }
        // No keys yet: the fetcher retries on its own (see `remote`).
        let Some(keys) = local.keys.as_deref() else {
            return Err(NO_KEYS);
        };
        let at = upstream.len();
        match self.verify(keys, token, now, upstream) {
            Ok(v) => {
                if self.cache {
                    local
                        .cache
                        .insert(cache::Entry::new(token, &upstream[at..], v.exp, v.nbf));
                }
                Ok(())
            }
            Err(refusal) => {
                upstream.truncate(at);
                Err(refusal)
            }
        }
    }

    /// `exp` (required) and `nbf`, with the leeway.
    fn check_times(&self, now: u64, exp: f64, nbf: Option<f64>) -> Result<(), Refusal> {
        if (now as f64) > exp + self.leeway as f64 {
            return Err((401, "token expired"));
        }
        if let Some(nbf) = nbf
            && (now as f64) + (self.leeway as f64) < nbf
        {
            return Err((401, "token not yet valid"));
        }
        Ok(())
    }

    /// The full check of a token not in the cache: signature, times, issuer,
    /// audience, scopes; appends the forwarded claims' field lines.
    fn verify(
        &self,
        keys: &KeySet,
        token: &[u8],
        now: u64,
        upstream: &mut Vec<u8>,
    ) -> Result<Verified, Refusal> {
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
        if let (Some(kid), Keys::Url(r)) = (&header.kid, &self.keys)
            && !keys.has_kid(kid)
        {
            // Perhaps a key the issuer rotated in since the last fetch.
            r.request_refresh();
        }
        let verified = keys
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
        let nbf = number("nbf");
        self.check_times(now, exp, nbf)?;
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
        Ok(Verified { exp, nbf })
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
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
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
        // Padding only where it is whole; no `=` in the middle or short of a quad.
        assert_eq!(b64url(b"aGk"), Some(b"hi".to_vec()));
        assert_eq!(b64url(b"YQ="), None);
        assert_eq!(b64url(b"YQ=="), Some(b"a".to_vec()));
        assert_eq!(b64url(b"Y=Q="), None);
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
        check_at(j, &mut j.new_local(), token, 1_000_000)
    }

    /// Checks `token` at second `now` with a worker's `local` state.
    fn check_at(j: &Jwt, local: &mut Local, token: &str, now: u64) -> Result<String, Refusal> {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n\r\n");
        let mut head = request::RequestHead::default();
        assert_eq!(
            request::parse(raw.as_bytes(), &Limits::default(), &mut head),
            Ok(true)
        );
        let mut up = Vec::new();
        j.authorize(local, raw.as_bytes(), &head, now, &mut up)
            .map(|()| String::from_utf8(up).unwrap())
    }

    #[test]
    fn a_cached_token_still_expires_and_forwards_its_claims() {
        let j = authorizer("leeway = \"0s\"");
        let mut local = j.new_local();
        let h = r#"{"alg":"HS256","kid":"h1"}"#;
        let claims = r#"{"iss":"https://issuer.example.com","aud":"api","exp":1000010,"nbf":999990,"scope":"read:users","sub":"u-7"}"#;
        let t = hs_jwt(b"secret", h, claims);
        for now in [999_990, 1_000_000, 1_000_010] {
            assert_eq!(
                check_at(&j, &mut local, &t, now),
                Ok("x-user-id: u-7\r\n".into())
            );
            assert_eq!(local.cache.len(), 1);
        }
        assert_eq!(
            check_at(&j, &mut local, &t, 1_000_011),
            Err((401, "token expired"))
        );
        assert!(local.cache.is_empty(), "an expired token stays cached");
        // Before nbf: refused, from the cache too.
        assert!(check_at(&j, &mut local, &t, 1_000_000).is_ok());
        assert_eq!(
            check_at(&j, &mut local, &t, 999_989),
            Err((401, "token not yet valid"))
        );
        // Refused tokens are not cached.
        let forged = hs_jwt(b"wrong", h, claims);
        assert_eq!(check_at(&j, &mut local, &forged, 1_000_000), Err(INVALID));
        assert!(local.cache.is_empty());
        let no_scope = hs_jwt(b"secret", h, &claims.replace("read:users", "write"));
        for _ in 0..2 {
            assert_eq!(
                check_at(&j, &mut local, &no_scope, 1_000_000),
                Err((403, "insufficient scope"))
            );
        }
        assert!(local.cache.is_empty());
    }

    #[test]
    fn cache_false_keeps_no_token() {
        let j = authorizer("cache = false");
        let mut local = j.new_local();
        let h = r#"{"alg":"HS256","kid":"h1"}"#;
        let claims = r#"{"iss":"https://issuer.example.com","aud":"api","exp":1000010,"scope":"read:users","sub":"u-7"}"#;
        let t = hs_jwt(b"secret", h, claims);
        for _ in 0..3 {
            assert_eq!(
                check_at(&j, &mut local, &t, 1_000_000),
                Ok("x-user-id: u-7\r\n".into())
            );
            assert!(local.cache.is_empty());
        }
    }

    #[test]
    fn jwks_url_config_errors() {
        let compile_with = |body: &str| {
            let t: model::Jwt = toml::from_str(body).unwrap();
            compile(&t, Path::new("/nonexistent"))
                .err()
                .map(|p| (p.key, p.message))
        };
        // (More cases, with file and line, in tests/tests/jwks.rs.)
        for (body, key, says) in [
            (
                "jwks_url = \"http://h/k\"\njwks_ca = \"ca.pem\"",
                "jwks_ca",
                "https://",
            ),
            (
                "jwks_file = \"k.json\"\njwks_refresh = \"1m\"",
                "jwks_refresh",
                "with `jwks_url` only",
            ),
            (
                "jwks_url = \"http://h/k\"\njwks_refresh = \"0s\"",
                "jwks_refresh",
                "at least",
            ),
        ] {
            let (k, m) = compile_with(body).unwrap_or_else(|| panic!("{body}: compiled"));
            assert_eq!(k, key, "{body}: {m}");
            assert!(m.contains(says), "{body}: {m}");
        }
        // A good URL compiles without any I/O; tokens wait for the keys.
        let t: model::Jwt = toml::from_str("jwks_url = \"https://issuer.invalid/jwks\"").unwrap();
        let j = compile(&t, Path::new("/nonexistent")).unwrap();
        let h = r#"{"alg":"HS256","kid":"h1"}"#;
        let good = r#"{"exp":1000100}"#;
        assert_eq!(check(&j, &hs_jwt(b"secret", h, good)), Err(NO_KEYS));
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
}
