//! JWS rules a JWT authorizer enforces on the token itself, through the
//! binary: a header naming critical extensions (`crit`, RFC 7515 §4.1.11)
//! is refused, since ringway understands none; segments are base64url
//! without padding and with canonical trailing bits (RFC 7515 §2). Each bad
//! token is otherwise valid and correctly signed, so only the rule refuses it.

use ringway_tests::gateway::TempDir;
use ringway_tests::jwks_server::b64url;
use ringway_tests::{Gateway, Origin, Response, send_raw};
use std::net::SocketAddr;

const SECRET: &[u8] = b"a shared secret of some length";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn config(app: SocketAddr, jwks: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{app}\"]\n\n[[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n\n[route.jwt]\nissuer = \"https://issuer.example.com\"\naudience = [\"api\"]\njwks_file = \"{}\"\ncache = false\n",
        jwks.display()
    )
}

fn claims() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        r#"{{"iss":"https://issuer.example.com","aud":"api","exp":{},"sub":"u1"}}"#,
        now + 300
    )
}

/// HS256 over the already-encoded `header.payload`, appended as the signature.
fn signed(header_payload: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
    let sig = ring::hmac::sign(&key, header_payload.as_bytes());
    format!("{header_payload}.{}", b64url(sig.as_ref()))
}

fn token(header_json: &str) -> String {
    signed(&format!(
        "{}.{}",
        b64url(header_json.as_bytes()),
        b64url(claims().as_bytes())
    ))
}

fn call(gw: &Gateway, token: &str) -> Response {
    send_raw(
        gw.addr,
        format!("GET /x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn crit_headers_and_loose_base64url_are_refused() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let jwks = dir.0.join("jwks.json");
    let k = b64url(SECRET);
    std::fs::write(
        &jwks,
        format!(r#"{{"keys":[{{"kty":"oct","kid":"h1","k":"{k}"}}]}}"#),
    )
    .unwrap();
    let gw = Gateway::start(&config(origin.addr, &jwks));

    // The control: the same kind of token, well formed, passes.
    let plain = r#"{"alg":"HS256","kid":"h1"}"#;
    assert_eq!(call(&gw, &token(plain)).status, 200);

    for crit in [
        r#"{"alg":"HS256","kid":"h1","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","kid":"h1","crit":[]}"#,
        r#"{"alg":"HS256","kid":"h1","crit":["b64"],"b64":true}"#,
    ] {
        let r = call(&gw, &token(crit));
        assert_eq!(r.status, 401, "{crit}");
        assert!(r.header("www-authenticate").is_some(), "{crit}");
    }

    // A header whose encoding does not fill its last quad: 26 bytes → 35 characters.
    let header = b64url(plain.as_bytes());
    assert_eq!(header.len() % 4, 3);
    let payload = b64url(claims().as_bytes());
    // Padded: the same bytes, with `=`.
    let padded = signed(&format!("{header}=.{payload}"));
    assert_eq!(call(&gw, &padded).status, 401, "padding");
    // Non-canonical: the last character's unused low bits set (decodes to
    // the same bytes with a lenient decoder).
    let mut loose = header.clone().into_bytes();
    let last = ALPHABET
        .iter()
        .position(|&c| c == *loose.last().unwrap())
        .unwrap();
    assert_eq!(
        last & 0b11,
        0,
        "canonical encodings leave the unused bits clear"
    );
    *loose.last_mut().unwrap() = ALPHABET[last | 1];
    let loose = signed(&format!("{}.{payload}", String::from_utf8(loose).unwrap()));
    assert_eq!(call(&gw, &loose).status, 401, "trailing bits");
    assert_eq!(origin.seen().len(), 1, "only the control was forwarded");
}
