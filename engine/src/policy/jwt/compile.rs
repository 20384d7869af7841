//! Control plane: a `[route.jwt]` table → [`Jwt`]: where the token is
//! read, which claims are checked and forwarded, and where the keys come
//! from (a JWKS file read now, or a URL fetched in the background).

use super::{DEFAULT_JWKS_REFRESH, Jwt, Keys, Source, fetch, keys, remote};
use crate::config::model;
use crate::policy::{Problem, throttle};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Control plane: `[route.jwt]` → [`Jwt`]; `base` is the config file's folder.
pub fn compile(t: &model::Jwt, base: &Path) -> Result<Jwt, Problem> {
    let keys = compile_keys(t, base)?;
    let source = match t.source.as_ref().map(|s| s.get_ref().as_str()) {
        None => Source::Bearer(b"authorization".as_slice().into()),
        Some(s) => match s.split_once(':') {
            Some(("header", n)) if throttle::is_token(n) => {
                Source::Bearer(n.to_ascii_lowercase().into_bytes().into())
            }
            Some(("cookie", n)) if throttle::is_token(n) => Source::Cookie(n.as_bytes().into()),
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
            if !throttle::is_token(header) {
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
