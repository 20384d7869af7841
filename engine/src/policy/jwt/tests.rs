//! The JWT authorizer on HS256 tokens: claims, times, scopes, the cache.

use super::*;
use crate::h1::{Limits, request};
use std::path::Path;

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn hs_jwt(secret: &[u8], header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", b64(tag.as_ref()))
}

fn authorizer(extra: &str) -> Jwt {
    // A folder per call: tests run in parallel and each writes its JWKS file.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ringway-jwt-unit-{}-{n}", std::process::id()));
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
