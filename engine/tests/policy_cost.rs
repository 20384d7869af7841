//! The policy chain on the hot path: a route with CORS, IP rules, an API key
//! (SHA-256 + plan bucket + quota), a per-client throttle and validation
//! allocates nothing per request once warm, and a route without policies
//! skips the chain. Prints the time per chain run (meaningful with
//! `cargo test --release -p ringway --test policy_cost -- --nocapture`).

use ringway::h1::Limits;
use ringway::h1::request::{self, RequestHead};
use ringway::policy::{self, Verdict, WorkerState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

struct Counting;

thread_local! {
    /// Allocations made by this thread (the test harness's own threads do not count).
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = r#"
[server]
workers = 1
trusted_proxies = ["127.0.0.1/32"]

[[upstream]]
name = "app"
targets = ["127.0.0.1:9"]

[[usage_plan]]
name = "basic"
rate = 1e12
burst = 1e12
quota = { limit = 1000000000, period = "day" }

[[api_key]]
name = "client-a"
value = "k-123"
plan = "basic"

[[route]]
path = "/{proxy+}"
upstream = "app"

[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"

[route.ip]
allow = ["10.0.0.0/8", "127.0.0.1/32"]

[route.api_key]
source = "header:x-api-key"

[route.throttle]
rate = 1e12
burst = 1e12
key = "client_ip"

[route.validate]
required_headers = ["x-api-key"]

[[route]]
path = "/plain"
upstream = "app"

[[route]]
path = "/cors"
upstream = "app"
[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_credentials = true

[[route]]
path = "/ip"
upstream = "app"
[route.ip]
allow = ["10.0.0.0/8", "127.0.0.1/32"]

[[route]]
path = "/key"
upstream = "app"
[route.api_key]

[[route]]
path = "/throttle"
upstream = "app"
[route.throttle]
rate = 1e12
key = "client_ip"

[[route]]
path = "/validate"
upstream = "app"
[route.validate]
required_headers = ["x-api-key"]
"#;

#[test]
fn the_chain_allocates_nothing_when_warm() {
    let snap = ringway::config::from_str(std::path::Path::new("t.toml"), CONFIG).unwrap();
    let mut state = WorkerState::new(&snap);
    // Request ids off: these runs have no id line at the head of `fields`.
    let env = policy::Env {
        request_id: None,
        ..snap.policy_env()
    };
    let raw = b"GET /users/42 HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://shop.example.com\r\nX-API-Key: k-123\r\nX-Forwarded-For: 10.1.2.3\r\nAccept: */*\r\n\r\n";
    let mut head = RequestHead::default();
    assert_eq!(request::parse(raw, &Limits::default(), &mut head), Ok(true));
    assert!(snap.routes[1].policies.is_empty());
    let mut fields = Vec::with_capacity(1024);
    let mut upstream = Vec::with_capacity(1024);
    let peer = "127.0.0.1".parse().unwrap();
    let mut run = |state: &mut WorkerState, route: usize, what: &str| {
        let chain = &snap.routes[route].policies;
        let mut one = |state: &mut WorkerState| {
            fields.clear();
            upstream.clear();
            let req = policy::Request {
                buf: raw,
                head: &head,
                peer,
                route,
                path: b"/users/42",
                found: None,
            };
            let v = policy::run(chain, &env, state, &req, &mut fields, &mut upstream);
            assert_eq!(v, Verdict::Forward);
        };
        one(state); // warm: the client's bucket is created
        let before = allocs();
        let n = 100_000;
        let t = Instant::now();
        for _ in 0..n {
            one(state);
        }
        let took = t.elapsed();
        let count = allocs() - before;
        assert_eq!(count, 0, "{what}: {count} allocations in {n} chain runs");
        println!(
            "{what:<44} {:>6.0} ns per request",
            took.as_nanos() as f64 / n as f64
        );
    };
    for (route, what) in [
        (2, "CORS (wildcard origin, credentials)"),
        (3, "IP rules (trusted proxy, X-Forwarded-For)"),
        (4, "API key (SHA-256, lookup, plan bucket, quota)"),
        (5, "throttle by client IP"),
        (6, "validate (one required header)"),
        (0, "CORS + IP + API key + throttle + validate"),
    ] {
        run(&mut state, route, what);
    }

    let text = String::from_utf8(fields.clone()).unwrap();
    assert!(text.contains("Access-Control-Allow-Origin: https://shop.example.com\r\n"));
}

/// Unpadded base64url.
fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    s
}

/// A JWT authorizer's cost per algorithm: a token the worker has not seen
/// (signature check and JSON decoding, which allocates) and a token from the
/// worker's cache of verified tokens (which must not allocate). Times are
/// reported, not asserted.
#[test]
fn jwt_cost_per_algorithm() {
    use ring::signature::{self, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let rsa = signature::RsaKeyPair::from_der(include_bytes!("../../tests/tests/data/jwt-rsa.der"))
        .unwrap();
    let rsa_pub: ring::rsa::PublicKeyComponents<Vec<u8>> = rsa.public().into();
    let ec_der =
        signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
    let ec = signature::EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        ec_der.as_ref(),
        &rng,
    )
    .unwrap();
    let ed_der = signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let ed = signature::Ed25519KeyPair::from_pkcs8(ed_der.as_ref()).unwrap();
    let point = ec.public_key().as_ref();
    let jwks = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"r","n":"{}","e":"{}"}},{{"kty":"EC","kid":"e","crv":"P-256","x":"{}","y":"{}"}},{{"kty":"OKP","kid":"d","crv":"Ed25519","x":"{}"}},{{"kty":"oct","kid":"h","k":"{}"}}]}}"#,
        b64url(&rsa_pub.n),
        b64url(&rsa_pub.e),
        b64url(&point[1..33]),
        b64url(&point[33..65]),
        b64url(ed.public_key().as_ref()),
        b64url(b"secret")
    );
    let dir = std::env::temp_dir().join(format!("ringway-jwt-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("jwks.json"), jwks).unwrap();
    let config = "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n[[route]]\npath = \"/{proxy+}\"\nupstream = \"app\"\n[route.jwt]\nissuer = \"https://issuer.example.com\"\naudience = [\"api\"]\njwks_file = \"jwks.json\"\nscopes = [\"read:users\"]\nforward_claims = { sub = \"x-user-id\" }\n";
    let snap = ringway::config::from_str(&dir.join("ringway.toml"), config).unwrap();
    let mut state = WorkerState::new(&snap);
    // Request ids off: these runs have no id line at the head of `fields`.
    let env = policy::Env {
        request_id: None,
        ..snap.policy_env()
    };
    let claims = r#"{"iss":"https://issuer.example.com","aud":"api","exp":99999999999,"sub":"user-7","scope":"read:users"}"#;
    for (alg, kid) in [
        ("HS256", "h"),
        ("RS256", "r"),
        ("ES256", "e"),
        ("EdDSA", "d"),
    ] {
        let signed = format!(
            "{}.{}",
            b64url(format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#).as_bytes()),
            b64url(claims.as_bytes())
        );
        let sig = match alg {
            "HS256" => ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret"),
                signed.as_bytes(),
            )
            .as_ref()
            .to_vec(),
            "RS256" => {
                let mut s = vec![0; rsa.public().modulus_len()];
                rsa.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    signed.as_bytes(),
                    &mut s,
                )
                .unwrap();
                s
            }
            "ES256" => ec.sign(&rng, signed.as_bytes()).unwrap().as_ref().to_vec(),
            _ => ed.sign(signed.as_bytes()).as_ref().to_vec(),
        };
        let raw = format!(
            "GET /users/7 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {signed}.{}\r\n\r\n",
            b64url(&sig)
        );
        let mut head = RequestHead::default();
        assert_eq!(
            request::parse(raw.as_bytes(), &Limits::default(), &mut head),
            Ok(true)
        );
        let (mut fields, mut upstream) = (Vec::with_capacity(256), Vec::with_capacity(256));
        let peer = "127.0.0.1".parse().unwrap();
        let mut one = |state: &mut WorkerState| {
            fields.clear();
            upstream.clear();
            let req = policy::Request {
                buf: raw.as_bytes(),
                head: &head,
                peer,
                route: 0,
                path: b"/users/7",
                found: None,
            };
            let v = policy::run(
                &snap.routes[0].policies,
                &env,
                state,
                &req,
                &mut fields,
                &mut upstream,
            );
            assert_eq!(v, Verdict::Forward, "{alg}");
            assert_eq!(upstream, b"x-user-id: user-7\r\n");
        };
        // Miss: the worker has not seen the token (its cache is emptied each time).
        let n = 2_000;
        let t = Instant::now();
        for _ in 0..n {
            state.forget_tokens();
            one(&mut state);
        }
        let miss = t.elapsed().as_nanos() as f64 / n as f64;
        // Hit: the same token again, from the worker's cache; no allocation.
        one(&mut state);
        let n = 100_000;
        let before = allocs();
        let t = Instant::now();
        for _ in 0..n {
            one(&mut state);
        }
        let hit = t.elapsed().as_nanos() as f64 / n as f64;
        let count = allocs() - before;
        assert_eq!(
            count, 0,
            "JWT {alg}: {count} allocations in {n} cached checks"
        );
        println!(
            "JWT {alg:<5} miss (verify, claims, forward sub) {miss:>8.0} ns   hit (cached) {hit:>6.0} ns per request"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// JSON Schema validation of a small (~200 B) body: the head checks run in
/// the chain; the body is parsed into a `serde_json::Value` and validated
/// (so it allocates: the time and the allocation count are reported, not
/// asserted).
#[test]
fn json_schema_cost_for_a_small_body() {
    let schema = r#"{
      "type": "object",
      "required": ["name", "email", "age"],
      "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "bio": {"type": "string", "maxLength": 500},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
        "address": {
          "type": "object",
          "properties": {"city": {"type": "string"}, "zip": {"type": "string", "maxLength": 10}}
        }
      },
      "additionalProperties": false
    }"#;
    let dir = std::env::temp_dir().join(format!("ringway-schema-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("user.json"), schema).unwrap();
    let config = "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n[[route]]\npath = \"/{proxy+}\"\nupstream = \"app\"\n[route.validate]\njson_schema = \"user.json\"\n";
    let snap = ringway::config::from_str(&dir.join("ringway.toml"), config).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut state = WorkerState::new(&snap);
    // Request ids off: these runs have no id line at the head of `fields`.
    let env = policy::Env {
        request_id: None,
        ..snap.policy_env()
    };
    let body = br#"{"name":"Ada Lovelace","email":"ada@example.com","age":36,"bio":"Wrote the first published algorithm for the Analytical Engine.","tags":["math","engines","poetry"],"address":{"city":"London","zip":"W1"}}"#;
    let invalid = br#"{"name":"Ada Lovelace","email":"ada@example.com","age":"36","bio":"Wrote the first published algorithm for the Analytical Engine.","tags":["math","engines","poetry"],"address":{"city":"London","zip":"W1"}}"#;
    let raw = format!(
        "POST /users HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut head = RequestHead::default();
    assert_eq!(
        request::parse(raw.as_bytes(), &Limits::default(), &mut head),
        Ok(true)
    );
    let chain = &snap.routes[0].policies;
    let json = chain.validate.as_deref().unwrap().json().unwrap();
    let (mut fields, mut upstream) = (Vec::new(), Vec::new());
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let req = policy::Request {
            buf: raw.as_bytes(),
            head: &head,
            peer: "127.0.0.1".parse().unwrap(),
            route: 0,
            path: b"/users",
            found: None,
        };
        let v = policy::run(chain, &env, &mut state, &req, &mut fields, &mut upstream);
        assert_eq!(v, Verdict::Forward);
    }
    println!(
        "validate json_schema: head checks                {:>8.0} ns per request",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    for (what, body, valid) in [
        ("valid", body.as_slice(), true),
        ("invalid (/age)", invalid.as_slice(), false),
    ] {
        assert_eq!(json.check_body(body).is_ok(), valid, "{what}");
        let before = allocs();
        let t = Instant::now();
        for _ in 0..n {
            let _ = std::hint::black_box(json.check_body(std::hint::black_box(body)));
        }
        let took = t.elapsed();
        println!(
            "validate json_schema: {} B body, {what:<15} {:>8.0} ns per request, {} allocations",
            body.len(),
            took.as_nanos() as f64 / n as f64,
            (allocs() - before) / n
        );
    }
}
