//! Amazon API Gateway exports served through the binary: the tutorial's
//! PetStore `{proxy+}` HTTP-proxy API (Swagger 2.0, OpenAPI 3 YAML and
//! JSON), an HTTP API with CORS, a JWT authorizer and `overwrite:` mappings,
//! a REST API with a mock integration, gateway responses, request validators
//! with a body schema and an API key, a resource policy on source IPs; the
//! route table `ringway check` prints for each flavour of one document;
//! `--openapi` on the command line and re-read on SIGHUP; bad documents
//! named by file, line and JSON pointer, all at once; `--strict`.
//!
//! Fixtures are in `tests/data/openapi/`. Every wait polls for an event
//! with a deadline; every address is on 127.0.0.1.

use ringway_tests::gateway::{TempDir, binary};
use ringway_tests::jwks_server::{JwksServer, b64url};
use ringway_tests::{Gateway, Origin, Response, send_raw, wait_until};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/openapi")
        .join(name)
}

/// `[server]` on an ephemeral port and an upstream `app` at `app`, then `rest`.
fn config(app: SocketAddr, rest: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 2\npin = false\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{app}\"]\nconnect_timeout = \"1s\"\nresponse_timeout = \"2s\"\n\n{rest}"
    )
}

fn request(addr: SocketAddr, method: &str, target: &str, fields: &str, body: &str) -> Response {
    let length = if body.is_empty() && method == "GET" {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    send_raw(
        addr,
        format!("{method} {target} HTTP/1.1\r\nHost: api.test\r\n{fields}{length}\r\n{body}")
            .as_bytes(),
    )
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&r.body)))
}

/// `ringway ARGS...`: exit code, stdout, stderr.
fn ringway(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("ringway"))
        .args(args)
        .output()
        .expect("run ringway");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines of `ringway check` output that describe what is served.
fn table(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .take_while(|l| !l.starts_with("warnings"))
        .filter(|l| !l.ends_with(": OK"))
        .map(str::to_string)
        .collect()
}

const PETSTORE: &[&str] = &[
    "petstore-swagger2.yaml",
    "petstore-oas3.yaml",
    "petstore-oas3.json",
];

#[test]
fn petstore_proxy_api_forwards_under_its_stage_in_every_flavour() {
    let origin = Origin::echo();
    for name in PETSTORE {
        let path = fixture(name);
        let gw = Gateway::start(&config(
            origin.addr,
            &format!(
                "[[openapi]]\nfile = {:?}\nupstreams = {{ \"petstore-demo-endpoint.execute-api.com\" = \"app\" }}\n",
                path.display().to_string()
            ),
        ));
        let before = origin.seen().len();
        let r = request(gw.addr, "GET", "/test/pets/7?type=dog", "", "");
        assert_eq!(r.status, 200, "{name}: {r:?}\n{}", gw.log().join("\n"));
        let seen = origin.seen();
        let s = &seen[before];
        // `{proxy}` through integration.request.path.proxy, the query kept.
        assert_eq!(s.target, "/petstore/pets/7?type=dog", "{name}");
        assert_eq!(s.method, "GET");
        // Literal and context mappings of requestParameters.
        assert_eq!(s.header("x-api-stage"), Some("test"), "{name}");
        assert_eq!(s.header("x-source-ip"), Some("127.0.0.1"), "{name}");
        // API Gateway sends the integration's host, not the client's.
        assert_eq!(s.header("host"), Some(origin.addr.to_string().as_str()));
        // ANY: the client's method goes upstream.
        let r = request(gw.addr, "POST", "/test/pets", "", "{\"name\":\"rex\"}");
        assert_eq!(r.status, 200, "{name}");
        let seen = origin.seen();
        let s = seen.last().unwrap();
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("POST", "/petstore/pets")
        );
        assert_eq!(s.body, b"{\"name\":\"rex\"}");
        // Outside the stage nothing matches, and nothing is forwarded.
        let n = origin.seen().len();
        assert_eq!(request(gw.addr, "GET", "/pets/7", "", "").status, 404);
        assert_eq!(origin.quiet().len(), n);
    }
}

#[test]
fn yaml_json_swagger_and_openapi3_flavours_give_the_same_table() {
    let tables: Vec<Vec<String>> = PETSTORE
        .iter()
        .map(|name| {
            let (code, out, err) =
                ringway(&["check", "--openapi", fixture(name).to_str().unwrap()]);
            assert_eq!(code, 0, "{name}: {err}");
            table(&out)
        })
        .collect();
    assert_eq!(tables[0], tables[1]);
    assert_eq!(tables[1], tables[2]);
    let t = tables[0].join("\n");
    // Alone, an export listens where API Gateway's local tools do.
    assert!(t.contains("listen: 127.0.0.1:8080"), "{t}");
    assert!(t.contains("stage: /test"), "{t}");
    assert!(
        t.contains("ANY      /{proxy+}")
            && t.contains("-> http://petstore-demo-endpoint.execute-api.com/petstore/{proxy}"),
        "{t}"
    );
}

#[test]
fn an_unresolvable_integration_host_is_a_warning_and_its_routes_answer_502() {
    let dir = TempDir::new();
    let doc = dir.0.join("api.yaml");
    std::fs::write(
        &doc,
        "openapi: 3.0.1\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get:\n      x-amazon-apigateway-integration:\n        type: http_proxy\n        httpMethod: GET\n        uri: http://backend.invalid/x\n",
    )
    .unwrap();
    let (code, out, err) = ringway(&["check", "--openapi", doc.to_str().unwrap(), "--strict"]);
    assert_eq!(
        code, 0,
        "a host that does not resolve is no error, even with --strict: {err}"
    );
    assert!(
        out.contains("api.yaml:9:14: `/paths/~1x/get/x-amazon-apigateway-integration/uri`: host \"backend.invalid\" does not resolve now"),
        "{out}"
    );
    let origin = Origin::echo();
    let gw = Gateway::start_with_args(
        &config(origin.addr, ""),
        &["--openapi", doc.to_str().unwrap()],
    );
    let r = request(gw.addr, "GET", "/x", "", "");
    assert_eq!(r.status, 502, "{r:?}");
    assert!(gw.log_contains("backend.invalid"), "the warning is logged");
}

#[test]
fn an_integration_host_that_starts_resolving_is_served_without_a_reload() {
    let origin = Origin::echo();
    let name = format!("rw-openapi-{}.test", std::process::id());
    let dir = TempDir::new();
    std::fs::write(
        dir.0.join("api.yaml"),
        format!(
            "openapi: 3.0.1\ninfo: {{title: t, version: '1'}}\npaths:\n  /x:\n    get:\n      x-amazon-apigateway-integration:\n        type: http_proxy\n        httpMethod: GET\n        uri: http://{name}:{}/x\n",
            origin.addr.port()
        ),
    )
    .unwrap();
    let hosts = ringway_tests::fleet::HostsEntries::new();
    let gw = Gateway::start(&config(
        origin.addr,
        &format!(
            "[[openapi]]\nfile = {:?}\nresolve_interval = \"100ms\"\n",
            dir.0.join("api.yaml")
        ),
    ));
    assert_eq!(request(gw.addr, "GET", "/x", "", "").status, 502);
    // The name appears (as when DNS catches up): the upstreams thread
    // resolves it again and the route is served, no reload.
    hosts.add("127.0.0.1", &name);
    assert!(
        wait_until(|| request(gw.addr, "GET", "/x", "", "").status == 200),
        "never served after {name} resolved: {:#?}",
        gw.log()
    );
    assert!(gw.log_contains("resolves"), "{:#?}", gw.log());
    assert_eq!(
        origin.seen().last().map(|r| r.target.clone()).as_deref(),
        Some("/x")
    );
}

#[test]
fn a_fixed_integration_method_is_sent_upstream_instead_of_the_clients() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let doc = dir.0.join("api.json");
    std::fs::write(
        &doc,
        format!(
            r#"{{"openapi": "3.0.1", "info": {{"title": "t", "version": "1"}}, "paths": {{
                "/search": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "http://{0}/find"}}}}}},
                "/any": {{"x-amazon-apigateway-any-method": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "http://{0}/all"}}}}}}}}}}"#,
            origin.addr
        ),
    )
    .unwrap();
    let gw = Gateway::start_with_args(
        &config(origin.addr, ""),
        &["--openapi", doc.to_str().unwrap()],
    );
    assert_eq!(request(gw.addr, "GET", "/search", "", "").status, 200);
    assert_eq!(request(gw.addr, "DELETE", "/any", "", "").status, 200);
    let mut s = ringway_tests::client::connect(gw.addr);
    std::io::Write::write_all(&mut s, b"HEAD /any HTTP/1.1\r\nHost: api.test\r\n\r\n").unwrap();
    let head = ringway_tests::client::read_response(&mut s, &mut Vec::new(), true);
    assert_eq!(head.map(|r| r.status), Some(200));
    let seen: Vec<(String, String)> = origin
        .seen()
        .iter()
        .map(|r| (r.method.clone(), r.target.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".into(), "/find".into()),
            ("POST".into(), "/all".into()),
            ("HEAD".into(), "/all".into())
        ],
        "GET and DELETE go up as the integration's POST; HEAD stays HEAD"
    );
    // And back out: the export says the fixed method.
    let (code, out, err) = ringway(&[
        "export-openapi",
        "--openapi",
        doc.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"httpMethod\": \"POST\""), "{out}");
}

#[test]
fn openapi_files_given_on_the_command_line_are_read_again_on_sighup() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let doc = dir.0.join("api.json");
    let write = |path: &str| {
        let text = format!(
            r#"{{"swagger": "2.0", "info": {{"title": "t", "version": "1"}}, "paths": {{"{path}": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "http://{}/seen{path}"}}}}}}}}}}"#,
            origin.addr
        );
        std::fs::write(&doc, text).unwrap();
    };
    write("/one");
    let gw = Gateway::start_with_args(
        &config(origin.addr, ""),
        &["--openapi", doc.to_str().unwrap()],
    );
    assert_eq!(request(gw.addr, "GET", "/one", "", "").status, 200);
    assert_eq!(origin.seen().last().unwrap().target, "/seen/one");
    assert_eq!(request(gw.addr, "GET", "/two", "", "").status, 404);
    write("/two");
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_for_generation(1), "{}", gw.log().join("\n"));
    assert_eq!(request(gw.addr, "GET", "/two", "", "").status, 200);
    assert_eq!(origin.seen().last().unwrap().target, "/seen/two");
    assert_eq!(request(gw.addr, "GET", "/one", "", "").status, 404);
}

/// An ES256 key, its JWKS, and tokens it signs.
struct Signer(ring::signature::EcdsaKeyPair);

impl Signer {
    fn new() -> Signer {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Signer(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn jwks(&self) -> String {
        use ring::signature::KeyPair;
        let p = self.0.public_key().as_ref();
        format!(
            r#"{{"keys":[{{"kty":"EC","kid":"k1","crv":"P-256","x":"{}","y":"{}"}}]}}"#,
            b64url(&p[1..33]),
            b64url(&p[33..65])
        )
    }

    fn token(&self, scope: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let claims = format!(
            r#"{{"iss":"https://issuer.example.com/pool-1","aud":"items-api","exp":{exp},"sub":"u1","scope":"{scope}"}}"#
        );
        let signed = format!(
            "{}.{}",
            b64url(br#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#),
            b64url(claims.as_bytes())
        );
        let sig = self
            .0
            .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", b64url(sig.as_ref()))
    }
}

#[test]
fn http_api_with_cors_a_jwt_authorizer_and_parameter_mappings() {
    let origin = Origin::echo();
    let key = Signer::new();
    let jwks = JwksServer::http(&key.jwks());
    let url = jwks.url("127.0.0.1", "/keys");
    let gw = Gateway::start(&config(
        origin.addr,
        &format!(
            "[[openapi]]\nfile = {:?}\nstage_variables = {{ backend = \"{}\" }}\n\n[openapi.authorizers.items-jwt]\njwks_url = \"{url}\"\n",
            fixture("http-api.yaml").display().to_string(),
            origin.addr
        ),
    ));
    let cors = "Origin: https://app.example.com\r\n";
    // The preflight is answered by the gateway.
    let r = request(
        gw.addr,
        "OPTIONS",
        "/items/42",
        &format!(
            "{cors}Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n"
        ),
        "",
    );
    assert!(r.status == 204 || r.status == 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-max-age"), Some("300"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    // No token: 401 (with the CORS fields), nothing forwarded.
    let n = origin.seen().len();
    let r = request(gw.addr, "GET", "/items/42", cors, "");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // The key set comes from the TOML's override; wait until it is loaded.
    let good = key.token("items/read");
    let auth = format!("{cors}Authorization: Bearer {good}\r\nX-Org: acme\r\nX-Debug: 1\r\n");
    let mut last = None;
    assert!(
        wait_until(|| {
            let r = request(gw.addr, "GET", "/items/42?page=2", &auth, "");
            let ok = r.status == 200;
            last = Some(r);
            ok
        }),
        "{last:?}\n{}",
        gw.log().join("\n")
    );
    let seen = origin.seen();
    let s = seen.last().unwrap();
    assert_eq!(s.target, "/v1/items/42?page=2&source=gateway");
    assert_eq!(
        s.header("x-tenant"),
        Some("acme"),
        "overwrite:header from $request.header"
    );
    assert_eq!(s.header("x-debug"), None, "remove:header");
    assert!(seen.len() > n);
    // A token without the route's scope is refused.
    let weak = key.token("items/write");
    let r = request(
        gw.addr,
        "GET",
        "/items/42",
        &format!("Authorization: Bearer {weak}\r\n"),
        "",
    );
    assert_eq!(r.status, 403, "{r:?}");
    // A route without security needs no token.
    assert_eq!(request(gw.addr, "GET", "/health", "", "").status, 200);
    assert_eq!(origin.seen().last().unwrap().target, "/healthz");
}

const KEYS: &str = r#"
[[usage_plan]]
name = "basic"

[[api_key]]
name = "client-a"
value = "key-123"
plan = "basic"
"#;

#[test]
fn rest_api_with_a_mock_gateway_responses_validators_and_api_keys() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(
        origin.addr,
        &format!(
            "{KEYS}\n[[openapi]]\nfile = {:?}\nupstreams = {{ \"backend.internal\" = \"app\" }}\n",
            fixture("rest-mock-validate.yaml").display().to_string()
        ),
    ));
    // The mock answers itself.
    let r = request(gw.addr, "GET", "/v1/status", "", "");
    assert_eq!(r.status, 200);
    assert_eq!(json(&r), serde_json::json!({"status": "ok"}));
    assert_eq!(r.header("x-mock"), Some("yes"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(origin.quiet().is_empty(), "a mock contacts no upstream");
    let valid = "{\"name\": \"rex\", \"age\": 3}";
    // No key: INVALID_API_KEY's template.
    let r = request(
        gw.addr,
        "POST",
        "/v1/pets",
        "X-Trace: t1\r\nContent-Type: application/json\r\n",
        valid,
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(json(&r)["error"], "a valid x-api-key is needed");
    // A body the schema refuses ($ref'd age below 0): BAD_REQUEST_BODY's status and template.
    let key = "X-Api-Key: key-123\r\nContent-Type: application/json\r\n";
    let r = request(
        gw.addr,
        "POST",
        "/v1/pets",
        &format!("{key}X-Trace: t1\r\n"),
        "{\"name\": \"rex\", \"age\": -1}",
    );
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(json(&r)["error"], "invalid body");
    let r = request(
        gw.addr,
        "POST",
        "/v1/pets",
        &format!("{key}X-Trace: t1\r\n"),
        "{\"age\": 3}",
    );
    assert_eq!(r.status, 422, "required `name`: {r:?}");
    assert!(origin.quiet().is_empty(), "nothing invalid was forwarded");
    // Valid: forwarded.
    let r = request(
        gw.addr,
        "POST",
        "/v1/pets",
        &format!("{key}X-Trace: t1\r\n"),
        valid,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = origin.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/pets")
    );
    assert_eq!(seen[0].body, valid.as_bytes());
    // The parameters validator: a required query parameter, and the path
    // parameter renamed through integration.request.path.id.
    let r = request(gw.addr, "GET", "/v1/pets/5?view=full", "", "");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen().last().unwrap().target, "/pets/5?view=full");
    let n = origin.seen().len();
    let r = request(gw.addr, "GET", "/v1/pets/5", "", "");
    assert_eq!(
        r.status, 422,
        "ringway keys gateway responses by status: {r:?}"
    );
    // An unknown route (the Lambda one is not served): DEFAULT_4XX's template and field.
    let r = request(gw.addr, "GET", "/v1/lambda", "", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-gateway-error"), Some("yes"));
    assert!(json(&r)["error"].is_string(), "{r:?}");
    assert_eq!(origin.quiet().len(), n);
}

#[test]
fn check_lists_every_unsupported_item_and_strict_refuses_them() {
    let doc = fixture("rest-mock-validate.yaml");
    let doc = doc.to_str().unwrap();
    let (code, out, err) = ringway(&["check", "--openapi", doc]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "rest-mock-validate.yaml:38:3: `/x-amazon-apigateway-binary-media-types`: `x-amazon-apigateway-binary-media-types` is not supported",
        "`/paths/~1lambda/get/x-amazon-apigateway-integration`: an `aws_proxy` (Lambda / AWS service) integration is not supported",
        "POST     /pets                            -> http://backend.internal/pets  [api_key, validate]",
        "GET      /status                          -> mock 200  [mock]",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    assert!(
        !out.contains("/lambda  "),
        "the Lambda route is not served:\n{out}"
    );
    let (code, _, err) = ringway(&["check", "--openapi", doc, "--strict"]);
    assert_eq!(code, 2);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("rest-mock-validate.yaml:"))
        .collect();
    assert_eq!(lines.len(), 2, "both unsupported items, in one run:\n{err}");
    assert!(
        lines[0].contains(
            ":38:3: key `/x-amazon-apigateway-binary-media-types`: unsupported (--strict)"
        ),
        "{err}"
    );
    assert!(
        lines[1].contains(
            "key `/paths/~1lambda/get/x-amazon-apigateway-integration`: unsupported (--strict)"
        ),
        "{err}"
    );
}

#[test]
fn bad_documents_name_file_line_and_pointer_all_at_once() {
    let (code, _, err) = ringway(&["check", "--openapi", fixture("bad.yaml").to_str().unwrap()]);
    assert_eq!(code, 2);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("bad.yaml:")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].contains("bad.yaml:11:14: key `/paths/~1pets~1{id}/get/x-amazon-apigateway-integration/uri`: the uri uses {petId}"), "{err}");
    assert!(lines[1].contains("bad.yaml:13:5: key `/paths/~1pets~1{petId}/get`: GET /pets/{petId} maps to the same route as /paths/~1pets~1{id}/get"), "{err}");
    assert!(lines[2].contains("bad.yaml:18:21: key `/paths/~1pets~1{petId}/get/requestBody/content/application~1json/schema/$ref`: $ref \"#/components/schemas/Missing\" points nowhere"), "{err}");
    // Text that is not YAML at all: its line, and nothing panics.
    let dir = TempDir::new();
    let doc = dir.0.join("broken.json");
    std::fs::write(
        &doc,
        "{\n  \"openapi\": \"3.0.1\",\n  \"paths\": {\n    \"/x\": [1, 2\n}\n",
    )
    .unwrap();
    let (code, _, err) = ringway(&["check", "--openapi", doc.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("broken.json:5:1: not a JSON or YAML document"),
        "{err}"
    );
    // The TOML's own mistakes come in the same run, with its lines.
    std::fs::write(
        dir.0.join("api.yaml"),
        std::fs::read(fixture("bad.yaml")).unwrap(),
    )
    .unwrap();
    let toml = "[server]\nworkerz = 1\n\n[[openapi]]\nfile = \"api.yaml\"\n\n[[openapi]]\nfile = \"missing.yaml\"\n";
    let (code, _, err) = ringway_tests::gateway::check_in(&dir.0, toml);
    assert_eq!(code, 2);
    assert!(
        err.contains("ringway.toml:2:1: key `server.workerz`"),
        "{err}"
    );
    assert!(
        err.contains("ringway.toml:8:8: key `openapi[1].file`: cannot read"),
        "{err}"
    );
    assert!(
        err.contains(
            "api.yaml:11:14: key `/paths/~1pets~1{id}/get/x-amazon-apigateway-integration/uri`"
        ),
        "{err}"
    );
}

#[test]
fn a_resource_policy_on_source_ips_becomes_ip_rules() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let doc = |condition: &str| {
        format!(
            r#"{{"openapi": "3.0.1", "info": {{"title": "t", "version": "1"}},
  "x-amazon-apigateway-policy": {{"Version": "2012-10-17", "Statement": [
    {{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"}},
    {{"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*",
     "Condition": {{"{condition}": {{"aws:SourceIp": ["127.0.0.1/32"]}}}}}}]}},
  "paths": {{"/x": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "http://{}/x"}}}}}}}}}}"#,
            origin.addr
        )
    };
    for (condition, status) in [("IpAddress", 403), ("NotIpAddress", 200)] {
        let path = dir.0.join(format!("{condition}.json"));
        std::fs::write(&path, doc(condition)).unwrap();
        let gw = Gateway::start_with_args(
            &config(origin.addr, ""),
            &["--openapi", path.to_str().unwrap()],
        );
        let r = request(gw.addr, "GET", "/x", "", "");
        assert_eq!(r.status, status, "{condition}: {r:?}");
    }
}

#[test]
fn export_writes_the_aws_extensions_and_serves_the_same_after_import() {
    let origin = Origin::echo();
    let dir = TempDir::new();
    let toml = config(
        origin.addr,
        r#"
[[route]]
path = "/users/{id}"
methods = ["GET"]
uri = "http://app/v2/users/{id}"

[route.cors]
allow_origins = ["https://app.example.com"]

[route.throttle]
rate = 100

[[route]]
path = "/ping"

[route.mock]
status = 200
body = "pong"
"#,
    );
    let path = dir.0.join("ringway.toml");
    std::fs::write(&path, &toml).unwrap();
    let (code, out, err) = ringway(&["export-openapi", "-c", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"x-amazon-apigateway-integration\":"),
        "{out}"
    );
    assert!(
        out.contains("\"uri\": \"http://app/v2/users/{id}\""),
        "{out}"
    );
    assert!(out.contains("\"x-ringway-throttle\":"), "{out}");
    // Served from the export alone (with the TOML's upstream), the routes act the same.
    std::fs::write(dir.0.join("api.yaml"), &out).unwrap();
    let gw = Gateway::start(&config(
        origin.addr,
        &format!(
            "[[openapi]]\nfile = {:?}\n",
            dir.0.join("api.yaml").display().to_string()
        ),
    ));
    let r = request(
        gw.addr,
        "GET",
        "/users/9",
        "Origin: https://app.example.com\r\n",
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(origin.seen().last().unwrap().target, "/v2/users/9");
    assert_eq!(request(gw.addr, "GET", "/ping", "", "").body, b"pong");
}
