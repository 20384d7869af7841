//! JWT authorizers whose keys come from a JWKS URL, through the binary: the
//! key set served over plain HTTP and over HTTPS with a private CA
//! (`jwks_ca`), key rotation picked up by the background refresh, an
//! unreachable issuer (401, nothing forwarded) and recovery, an unknown `kid`
//! asking for an early fetch, keys kept across a reload, a cached token that
//! still expires, and config errors naming file, line and key.
//!
//! Waits poll with a deadline ([`ringway_tests::WAIT`]); nothing here
//! measures speed.

use ringway_tests::gateway::{TempDir, check_in};
use ringway_tests::jwks_server::{JwksServer, Reserved, b64url};
use ringway_tests::pki::Ca;
use ringway_tests::{Gateway, Origin, Response, WAIT, prom, send_raw};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A signing key: ES256 (generated) or RS256 (the test RSA key), with its kid.
enum Signer {
    Es(String, ring::signature::EcdsaKeyPair),
    Rs(String, ring::signature::RsaKeyPair),
}

impl Signer {
    fn es256(kid: &str) -> Signer {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
        Signer::Es(kid.into(), pair)
    }

    fn rs256(kid: &str) -> Signer {
        let pair = ring::signature::RsaKeyPair::from_der(include_bytes!("data/jwt-rsa.der"))
            .expect("test RSA key");
        Signer::Rs(kid.into(), pair)
    }

    /// The public half as a JWK.
    fn jwk(&self) -> String {
        use ring::signature::KeyPair;
        match self {
            Signer::Es(kid, k) => {
                let p = k.public_key().as_ref();
                format!(
                    r#"{{"kty":"EC","kid":"{kid}","crv":"P-256","x":"{}","y":"{}"}}"#,
                    b64url(&p[1..33]),
                    b64url(&p[33..65])
                )
            }
            Signer::Rs(kid, k) => {
                let pk: ring::rsa::PublicKeyComponents<Vec<u8>> = k.public().into();
                format!(
                    r#"{{"kty":"RSA","kid":"{kid}","alg":"RS256","n":"{}","e":"{}"}}"#,
                    b64url(&pk.n),
                    b64url(&pk.e)
                )
            }
        }
    }

    /// A token signed by this key over `claims`.
    fn token(&self, claims: &str) -> String {
        let rng = ring::rand::SystemRandom::new();
        let (alg, kid) = match self {
            Signer::Es(kid, _) => ("ES256", kid),
            Signer::Rs(kid, _) => ("RS256", kid),
        };
        let signed = format!(
            "{}.{}",
            b64url(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#).as_bytes()),
            b64url(claims.as_bytes())
        );
        let sig = match self {
            Signer::Es(_, k) => k.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Rs(_, k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    signed.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
        };
        format!("{signed}.{}", b64url(&sig))
    }
}

fn jwks(keys: &[&Signer]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| k.jwk()).collect();
    format!(r#"{{"keys":[{}]}}"#, keys.join(","))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims the test authorizer accepts, expiring at `exp`.
fn claims_until(exp: u64) -> String {
    format!(
        r#"{{"iss":"https://issuer.example.com","aud":"api","exp":{exp},"sub":"user-7","scope":"read:users"}}"#
    )
}

fn claims() -> String {
    claims_until(now() + 3600)
}

/// A gateway on an ephemeral port, upstream `app`, one route with a JWT
/// authorizer whose `[route.jwt]` ends with `jwt_extra`.
fn config(app: SocketAddr, server_extra: &str, jwt_extra: &str) -> String {
    format!(
        r#"[server]
listen = ["127.0.0.1:0"]
workers = 2
pin = false
{server_extra}

[[upstream]]
name = "app"
targets = ["{app}"]

[[route]]
path = "/{{proxy+}}"
upstream = "app"

[route.jwt]
issuer = "https://issuer.example.com"
audience = ["api"]
scopes = ["read:users"]
forward_claims = {{ sub = "x-user-id" }}
{jwt_extra}
"#
    )
}

fn call(gw: &Gateway, token: &str) -> Response {
    send_raw(
        gw.addr,
        format!("GET /users/7 HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
}

fn message(r: &Response) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.body)));
    v["message"].as_str().expect("a message").to_string()
}

/// Sends `token` until the answer has `status`, for up to [`WAIT`]; the last answer.
fn until_status(gw: &Gateway, token: &str, status: u16) -> Response {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = call(gw, token);
        if r.status == status || Instant::now() > deadline {
            return r;
        }
        // Poll interval.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The refusal every request gets while no key set was ever fetched.
fn assert_keys_unavailable(r: &Response) {
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(message(r), "signing keys unavailable");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[test]
fn keys_from_a_jwks_url_over_plain_http() {
    let origin = Origin::echo();
    let key = Signer::es256("k1");
    let server = JwksServer::http(&jwks(&[&key]));
    let url = server.url("127.0.0.1", "/.well-known/jwks.json");
    let gw = Gateway::start(&config(origin.addr, "", &format!("jwks_url = \"{url}\"")));
    let good = key.token(&claims());
    let r = until_status(&gw, &good, 200);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log().join("\n"));
    assert!(gw.log_contains(&format!("jwks {url}: 1 key loaded")));
    // Forged and foreign tokens are refused, never forwarded.
    let stranger = Signer::es256("k1").token(&claims());
    let r = call(&gw, &stranger);
    assert_eq!((r.status, message(&r).as_str()), (401, "invalid token"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers_named("x-user-id"), ["user-7"]);
}

#[test]
fn keys_over_https_need_a_trusted_ca() {
    let origin = Origin::echo();
    let key = Signer::rs256("r1");
    let ca = Ca::new("jwks test CA");
    let server = JwksServer::https(&jwks(&[&key]), &ca.server(&["localhost"]));
    let url = server.url("localhost", "/jwks");
    let dir = TempDir::new();
    let ca_path = dir.0.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let token = key.token(&claims());

    // The private CA trusted with jwks_ca: keys load, tokens pass.
    let gw = Gateway::start(&config(
        origin.addr,
        "",
        &format!("jwks_url = \"{url}\"\njwks_ca = \"{}\"", ca_path.display()),
    ));
    let r = until_status(&gw, &token, 200);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log().join("\n"));
    drop(gw);

    // Without it (the default roots), the certificate is refused: no keys, no access.
    let gw = Gateway::start(&config(origin.addr, "", &format!("jwks_url = \"{url}\"")));
    assert!(gw.wait_for_log("fetch failed"), "{}", gw.log().join("\n"));
    let line = gw
        .log()
        .into_iter()
        .find(|l| l.contains("fetch failed"))
        .unwrap();
    assert!(
        line.contains("certificate") || line.contains("Certificate"),
        "{line}"
    );
    assert_keys_unavailable(&call(&gw, &token));
    assert_eq!(origin.seen().len(), 1, "a refused request was forwarded");
}

#[test]
fn a_rotated_key_is_picked_up_by_the_refresh() {
    let origin = Origin::echo();
    let old = Signer::es256("old");
    let new = Signer::es256("new");
    let server = JwksServer::http(&jwks(&[&old]));
    let url = server.url("127.0.0.1", "/jwks");
    let gw = Gateway::start(&config(
        origin.addr,
        "",
        &format!("jwks_url = \"{url}\"\njwks_refresh = \"200ms\""),
    ));
    let (old_token, new_token) = (old.token(&claims()), new.token(&claims()));
    assert_eq!(until_status(&gw, &old_token, 200).status, 200);
    // Cached on whichever worker answered; it must not outlive the key.
    for _ in 0..5 {
        assert_eq!(call(&gw, &old_token).status, 200);
    }
    server.set(&jwks(&[&new]));
    let r = until_status(&gw, &new_token, 200);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log().join("\n"));
    // The new set is installed everywhere before any worker can use it:
    // from now on the removed key's token is refused on every worker.
    for _ in 0..10 {
        let r = call(&gw, &old_token);
        assert_eq!((r.status, message(&r).as_str()), (401, "invalid token"));
    }
    assert_eq!(origin.seen().len(), 7);
}

#[test]
fn an_unreachable_issuer_refuses_everything_until_it_answers() {
    let origin = Origin::echo();
    let key = Signer::es256("k1");
    let reserved = Reserved::new();
    let url = format!("http://{}/jwks", reserved.addr);
    let gw = Gateway::start(&config(
        origin.addr,
        "[server.admin]\nlisten = \"127.0.0.1:0\"",
        &format!("jwks_url = \"{url}\"\njwks_refresh = \"200ms\""),
    ));
    let token = key.token(&claims());
    assert!(gw.wait_for_log("fetch failed"), "{}", gw.log().join("\n"));
    for _ in 0..3 {
        assert_keys_unavailable(&call(&gw, &token));
    }
    assert!(origin.seen().is_empty(), "forwarded without keys");

    // The issuer comes up: the retry finds it.
    let server = reserved.listen(&jwks(&[&key]));
    let r = until_status(&gw, &token, 200);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log().join("\n"));
    assert!(server.requests() >= 1);
    assert_eq!(origin.seen().len(), 1);

    let text =
        String::from_utf8(ringway_tests::client::get(gw.admin_addr(), "/metrics").body).unwrap();
    let samples = prom::parse(&text).unwrap();
    let fetches = |result: &str| {
        prom::value(
            &samples,
            "ringway_jwks_fetches_total",
            &[("url", &url), ("result", result)],
        )
    };
    assert!(fetches("failure") >= 1.0, "{text}");
    assert!(fetches("success") >= 1.0, "{text}");
}

#[test]
fn an_unknown_kid_asks_for_an_early_fetch_and_a_reload_keeps_the_keys() {
    let origin = Origin::echo();
    let first = Signer::es256("first");
    let second = Signer::es256("second");
    let third = Signer::es256("third");
    let server = JwksServer::http(&jwks(&[&first]));
    let url = server.url("127.0.0.1", "/jwks");
    // An hour between refreshes: only an early fetch can find `second`.
    let jwt = format!("jwks_url = \"{url}\"\njwks_refresh = \"1h\"");
    let mut gw = Gateway::start(&config(origin.addr, "", &jwt));
    let first_token = first.token(&claims());
    assert_eq!(until_status(&gw, &first_token, 200).status, 200);
    assert_eq!(server.requests(), 1);

    server.set(&jwks(&[&first, &second]));
    let second_token = second.token(&claims());
    // The request naming the unknown kid is refused itself...
    let r = call(&gw, &second_token);
    assert_eq!((r.status, message(&r).as_str()), (401, "invalid token"));
    // ... and the early fetch lets the next ones through.
    let r = until_status(&gw, &second_token, 200);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log().join("\n"));
    assert_eq!(server.requests(), 2);

    // Another unknown kid within 30 s does not fetch again.
    server.set(&jwks(&[&first, &second, &third]));
    let third_token = third.token(&claims());
    for _ in 0..5 {
        assert_eq!(call(&gw, &third_token).status, 401);
    }
    // No event to wait for: a worker decides on the spot not to ask for a
    // fetch, and not asking leaves no trace (no log line, no metric). This
    // window is the fetcher's chance to act on a request that should not
    // exist; the rate limit itself is unit-tested in policy::jwt::remote.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.requests(), 2, "early fetches are rate-limited");

    // A reload with the same URL keeps the fetched keys: no gap, no fetch.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace("pin = false", "pin = false\n# reloaded"),
    )
    .unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_log("generation 1"), "{}", gw.log().join("\n"));
    let r = call(&gw, &second_token);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(server.requests(), 2);
    assert_eq!(origin.seen().len(), 3);
    assert_eq!(gw.wait_exit(Duration::ZERO), None);
}

#[test]
fn a_cached_token_is_refused_once_it_expires() {
    let origin = Origin::echo();
    let key = Signer::es256("k1");
    let server = JwksServer::http(&jwks(&[&key]));
    let url = server.url("127.0.0.1", "/jwks");
    let gw = Gateway::start(&config(
        origin.addr,
        "",
        &format!("jwks_url = \"{url}\"\nleeway = \"0s\""),
    ));
    // Wait for the keys with a long-lived token, then use a short-lived one.
    assert_eq!(until_status(&gw, &key.token(&claims()), 200).status, 200);
    let short = key.token(&claims_until(now() + 3));
    let mut accepted = 0;
    let deadline = Instant::now() + WAIT;
    let refused = loop {
        let r = call(&gw, &short);
        if r.status != 200 {
            break r;
        }
        accepted += 1;
        assert!(Instant::now() < deadline, "still accepted after {WAIT:?}");
        // Poll interval while the token's 3 s run out.
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(accepted >= 3, "accepted only {accepted} times");
    assert_eq!(
        (refused.status, message(&refused).as_str()),
        (401, "token expired")
    );
    for _ in 0..5 {
        assert_eq!(call(&gw, &short).status, 401);
    }
    assert_eq!(origin.seen().len(), 1 + accepted);
}

#[test]
fn jwks_url_config_errors_name_file_line_and_key() {
    let app: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join("jwks.json"),
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
    )
    .unwrap();
    std::fs::write(dir.0.join("junk.pem"), "not a certificate\n").unwrap();
    for (jwt, key, says) in [
        (
            "jwks_url = \"ftp://issuer.example.com/jwks\"",
            "jwks_url",
            "scheme \"ftp\" is not supported",
        ),
        ("jwks_url = \"https:///jwks\"", "jwks_url", "no host"),
        (
            "jwks_file = \"jwks.json\"\njwks_url = \"https://issuer.example.com/jwks\"",
            "jwks_url",
            "either `jwks_file` or `jwks_url`, not both",
        ),
        ("", "jwks_file", "needs `jwks_file` or `jwks_url`"),
        (
            "jwks_url = \"https://issuer.example.com/jwks\"\njwks_ca = \"junk.pem\"",
            "jwks_ca",
            "junk.pem",
        ),
        (
            "jwks_url = \"https://issuer.example.com/jwks\"\njwks_ca = \"missing.pem\"",
            "jwks_ca",
            "cannot read",
        ),
        (
            "jwks_url = \"https://issuer.example.com/jwks\"\njwks_refresh = \"soon\"",
            "jwks_refresh",
            "invalid duration",
        ),
    ] {
        let text = config(app, "", jwt);
        let (code, _, err) = check_in(&dir.0, &text);
        assert_eq!(code, 2, "{jwt}: {err}");
        let line = text.lines().position(|l| l.starts_with(key)).map_or_else(
            // No such line: the error points at the `[route.jwt]` table.
            || text.lines().position(|l| l == "[route.jwt]").unwrap() + 1,
            |i| i + 1,
        );
        let at = format!("ringway.toml:{line}:");
        assert!(err.contains(&at), "{jwt}: wanted {at}\n{err}");
        // Type errors (from the TOML reader) and checks alike name the route by index.
        let full = format!("key `route[0].jwt.{key}`");
        assert!(err.contains(&full), "{jwt}: {err}");
        assert!(err.contains(says), "{jwt}: {err}");
    }
    // A good URL checks without any network access (the host does not exist).
    let (code, out, err) = check_in(
        &dir.0,
        &config(
            app,
            "",
            "jwks_url = \"https://issuer.invalid/jwks\"\njwks_refresh = \"10m\"",
        ),
    );
    assert_eq!(code, 0, "{out}{err}");
}
