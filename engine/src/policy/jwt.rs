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
mod compile;
pub mod fetch;
pub mod keys;
pub mod remote;

pub use compile::compile;
pub use keys::b64url;

use super::{Check, Compile, Policy, Problem, Verdict};
use crate::config::model;
use crate::h1::request::RequestHead;
use keys::{Alg, KeySet};
use remote::RemoteKeys;
use serde::Deserialize;
use std::ops::ControlFlow;
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

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// Extensions the token says must be understood (RFC 7515 §4.1.11).
    /// ringway understands none, so a token that names any is refused.
    crit: Option<serde_json::Value>,
}

/// One segment of a compact JWS: base64url without padding and with
/// canonical trailing bits (RFC 7515 §2), unlike key material in a JWKS,
/// which issuers sometimes pad.
fn segment(s: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
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
        let header: Header = segment(h)
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or(INVALID)?;
        if header.crit.is_some() {
            return Err(INVALID);
        }
        let alg = Alg::parse(&header.alg).ok_or(INVALID)?;
        let sig = segment(s).ok_or(INVALID)?;
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
        let claims: serde_json::Map<String, serde_json::Value> = segment(p)
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
mod tests;
