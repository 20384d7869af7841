//! The importer against the compiler: YAML and JSON of one document give
//! the same model; hostile documents give errors, never panics; and the
//! round trip: a generated config, exported and imported again with the
//! same TOML's upstreams and keys, compiles to the same route table and
//! policies.

use super::*;
use proptest::prelude::*;
use std::fmt::Write;

/// A scratch folder for one test case.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("ringway-openapi-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a snapshot serves, in an order that does not depend on the
/// order routes were declared in.
fn served(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "stage {:?}", s.router.stage());
    let mut table: Vec<String> = s
        .router
        .table()
        .map(|e| {
            let r = &s.routes[e.route];
            format!(
                "{:?} {} {} -> upstream {} {:?} preserve_host={} websocket={}\n  {:?}",
                e.host,
                e.method,
                e.path,
                s.upstreams[r.upstream].name,
                r.uri_text,
                r.preserve_host,
                r.websocket,
                r.policies
            )
        })
        .collect();
    table.sort();
    for t in table {
        let _ = writeln!(out, "{t}");
    }
    let _ = writeln!(out, "{:?}", s.gateway_responses);
    out
}

fn load_toml(path: &Path) -> Result<(Snapshot, Vec<Warning>), ConfigError> {
    load(&Sources {
        config: Some(path.to_path_buf()),
        ..Default::default()
    })
}

const PETSTORE_YAML: &str = "openapi: 3.0.1\ninfo: {title: p, version: '1'}\nservers:\n  - url: https://x/{basePath}\n    variables:\n      basePath:\n        default: /test\npaths:\n  /{proxy+}:\n    x-amazon-apigateway-any-method:\n      x-amazon-apigateway-integration:\n        type: http_proxy\n        httpMethod: ANY\n        uri: http://app/petstore/{proxy}\n        requestParameters:\n          integration.request.path.proxy: method.request.path.proxy\n          integration.request.header.x-stage: \"'test'\"\n";

const PETSTORE_JSON: &str = r#"{"openapi": "3.0.1", "info": {"title": "p", "version": "1"},
 "servers": [{"url": "https://x/{basePath}", "variables": {"basePath": {"default": "/test"}}}],
 "paths": {"/{proxy+}": {"x-amazon-apigateway-any-method": {"x-amazon-apigateway-integration": {
   "type": "http_proxy", "httpMethod": "ANY", "uri": "http://app/petstore/{proxy}",
   "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy",
                         "integration.request.header.x-stage": "'test'"}}}}}}"#;

const UPSTREAM: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\n[[usage_plan]]\nname = \"basic\"\n\n[[api_key]]\nname = \"k\"\nvalue = \"secret\"\nplan = \"basic\"\n";

#[test]
fn yaml_and_json_of_one_document_compile_to_the_same_snapshot() {
    let dir = Scratch::new("flavours");
    dir.write("a.yaml", PETSTORE_YAML);
    dir.write("a.json", PETSTORE_JSON);
    let one = dir.write(
        "one.toml",
        &format!("{UPSTREAM}\n[[openapi]]\nfile = \"a.yaml\"\n"),
    );
    let two = dir.write(
        "two.toml",
        &format!("{UPSTREAM}\n[[openapi]]\nfile = \"a.json\"\n"),
    );
    let (a, wa) = load_toml(&one).unwrap();
    let (b, wb) = load_toml(&two).unwrap();
    assert!(wa.is_empty() && wb.is_empty(), "{wa:?} {wb:?}");
    assert_eq!(served(&a), served(&b));
    assert!(
        served(&a).contains("Some(\"http://app/petstore/{proxy}\")"),
        "{}",
        served(&a)
    );
}

#[test]
fn hostile_documents_are_errors_never_panics() {
    let dir = Scratch::new("hostile");
    for (i, text) in [
        "",
        "null",
        "[]",
        "openapi: 3.0.1\npaths: 5\n",
        "openapi: 3.0.1\npaths:\n  /x:\n    get:\n      x-amazon-apigateway-integration: 1\n",
        "openapi: 3.0.1\npaths:\n  /x:\n    get:\n      x-amazon-apigateway-integration: {type: http_proxy, uri: 7}\n",
        "openapi: 3.0.1\npaths:\n  /x/{a}:\n    get:\n      x-amazon-apigateway-integration: {type: http_proxy, uri: 'http://h:99999/{a}'}\n",
        "openapi: 3.0.1\npaths:\n  /x:\n    get:\n      x-amazon-apigateway-integration: {type: http_proxy, uri: 'http://${stageVariables.'}\n",
        "openapi: 3.0.1\npaths:\n  x:\n    get: {}\n",
        "openapi: 3.0.1\nx-amazon-apigateway-request-validators: 3\nx-amazon-apigateway-request-validator: nope\npaths:\n  /x:\n    get:\n      x-amazon-apigateway-integration: {type: mock}\n",
        "swagger: '2.0'\ndefinitions:\n  A: {$ref: '#/definitions/A'}\nx-amazon-apigateway-request-validators: {v: {validateRequestBody: true}}\nx-amazon-apigateway-request-validator: v\npaths:\n  /x:\n    post:\n      parameters: [{in: body, name: b, schema: {$ref: '#/definitions/A'}}]\n      x-amazon-apigateway-integration: {type: mock}\n",
        "openapi: 3.0.1\npaths:\n  /x:\n    get:\n      security: [{nope: []}]\n      x-amazon-apigateway-integration: {type: mock, responses: {default: {statusCode: abc}}}\n",
    ]
    .iter()
    .enumerate()
    {
        let path = dir.write(&format!("h{i}.yaml"), text);
        let r = load(&Sources {
            openapi: vec![path],
            ..Default::default()
        });
        // Either outcome is fine; an error must name the document.
        if let Err(e) = r {
            assert!(e.to_string().contains(&format!("h{i}.yaml")), "{text:?}: {e}");
        }
    }
}

#[test]
fn integration_settings_shape_the_upstreams_made_for_hosts() {
    let doc = r#"{"openapi": "3.0.1", "info": {"title": "t", "version": "1"},
 "servers": [{"url": "https://x/{basePath}", "variables": {"basePath": {"default": "/doc"}}}],
 "paths": {
  "/a": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET",
     "uri": "https://10.1.2.3:8443/a", "timeoutInMillis": 1500,
     "tlsConfig": {"serverNameToVerify": "backend.example"}}}},
  "/b": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET",
     "uri": "https://10.1.2.3:8443/b", "timeoutInMillis": 900}}},
  "/c": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET",
     "uri": "https://10.1.2.3:8443/c", "timeoutInMillis": 1500,
     "tlsConfig": {"serverNameToVerify": "backend.example"}}}},
  "/d/{id}": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET",
     "uri": "http://${stageVariables.host}/d/{n}?v={v}",
     "requestParameters": {"integration.request.path.n": "method.request.path.id",
                           "integration.request.path.v": "'2'",
                           "integration.request.querystring.k": "stageVariables.key"}}}}}}"#;
    let dir = Scratch::new("settings");
    dir.write("api.json", doc);
    let toml = dir.write(
        "ringway.toml",
        "[[openapi]]\nfile = \"api.json\"\nstage = \"/v9\"\nstage_variables = { host = \"127.0.0.1:7000\", key = \"s3cret\" }\n",
    );
    let (s, warnings) = load_toml(&toml).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        s.router.stage(),
        Some("/v9"),
        "the [[openapi]] stage wins over basePath"
    );
    let names: Vec<&str> = s.upstreams.iter().map(|u| u.name.as_str()).collect();
    // One upstream per distinct setting of a host: /a and /c share one.
    assert_eq!(
        names,
        ["10.1.2.3:8443", "10.1.2.3:8443~2", "127.0.0.1:7000"]
    );
    let a = &s.upstreams[0];
    assert!(a.targets[0].tls);
    assert_eq!(a.response_timeout, std::time::Duration::from_millis(1500));
    assert_eq!(
        a.tls.as_ref().and_then(|t| t.server_name.as_deref()),
        Some("backend.example")
    );
    assert_eq!(
        s.upstreams[1].response_timeout,
        std::time::Duration::from_millis(900)
    );
    let d = s.routes.iter().find(|r| r.path == "/d/{id}").unwrap();
    assert_eq!(
        d.uri_text.as_deref(),
        Some("http://127.0.0.1:7000/d/{id}?v=2")
    );
    // `integration.request.querystring.k` ← `stageVariables.key`: the literal value.
    let mapping = format!("{:?}", d.policies.mapping);
    let literal = format!("Literal({:?})", b"s3cret");
    assert!(
        mapping.contains(&literal) && mapping.contains("name: [107]"),
        "{mapping}"
    );
}

#[test]
fn stages_that_disagree_and_unknown_variables_are_errors() {
    let dir = Scratch::new("stages");
    dir.write("a.yaml", PETSTORE_YAML);
    let toml = dir.write(
        "ringway.toml",
        "[server]\nstage = \"/one\"\n\n[[openapi]]\nfile = \"a.yaml\"\nstage = \"/two\"\n",
    );
    let e = load_toml(&toml).unwrap_err().to_string();
    assert!(
        e.contains(
            "ringway.toml:6:9: key `openapi.stage`: stage \"/two\" differs from the stage \"/one\""
        ),
        "{e}"
    );
    // A basePath that disagrees with the TOML's stage is only a warning.
    let toml = dir.write(
        "b.toml",
        "[server]\nstage = \"/one\"\n\n[[openapi]]\nfile = \"a.yaml\"\n",
    );
    let (s, warnings) = load_toml(&toml).unwrap();
    assert_eq!(s.router.stage(), Some("/one"));
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("basePath \"/test\"") && w.line == 7),
        "{warnings:?}"
    );
}

// ---- the round trip ----

const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/{id}",
    "/a/{id}/b",
    "/c/{x}/{y}",
    "/{proxy+}",
    "/d/{rest+}",
];
const METHODS: &[&str] = &["ANY", "GET", "POST", "DELETE"];

#[derive(Debug, Clone)]
enum Target {
    Upstream,
    Uri(bool),
    Mock(u16, Option<String>),
}

#[derive(Debug, Clone)]
struct GenRoute {
    path: usize,
    method: usize,
    target: Target,
    cors: Option<Vec<String>>,
    ip: Option<(Vec<String>, Vec<String>)>,
    api_key: Option<String>,
    jwt: Option<(Vec<String>, Vec<String>, bool)>,
    throttle: Option<(u32, Option<u32>)>,
    validate: Option<(Vec<String>, Vec<String>)>,
    mapping: Option<String>,
    preserve_host: bool,
}

fn names() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z]{1,6}", 1..3)
}

fn route() -> impl Strategy<Value = GenRoute> {
    let target = prop_oneof![
        Just(Target::Upstream),
        any::<bool>().prop_map(Target::Uri),
        (
            prop_oneof![Just(200u16), Just(201), Just(404)],
            prop::option::of("[a-z ]{0,12}")
        )
            .prop_map(|(s, b)| Target::Mock(s, b)),
    ];
    let policies = (
        prop::option::of(names().prop_map(|o| {
            o.into_iter()
                .map(|h| format!("https://{h}.example"))
                .collect()
        })),
        prop::option::of((
            prop::collection::vec(
                prop_oneof![
                    Just("10.0.0.0/8".to_string()),
                    Just("192.0.2.1/32".to_string())
                ],
                0..2,
            ),
            prop::collection::vec(
                prop_oneof![
                    Just("203.0.113.0/24".to_string()),
                    Just("::1/128".to_string())
                ],
                0..2,
            ),
        )),
        prop::option::of(prop_oneof![
            Just("header:x-api-key".to_string()),
            Just("header:x-key".to_string())
        ]),
        prop::option::of((
            names(),
            prop::collection::vec("[a-z]{1,5}", 0..2),
            any::<bool>(),
        )),
    );
    let more = (
        prop::option::of((1u32..1000, prop::option::of(1u32..50))),
        prop::option::of((
            prop::collection::vec("x-[a-z]{1,5}", 0..2),
            prop::collection::vec("[a-z]{1,5}", 0..2),
        )),
        prop::option::of("[a-z0-9]{1,8}"),
        any::<bool>(),
    );
    (0..PATHS.len(), 0..METHODS.len(), target, policies, more).prop_map(
        |(
            path,
            method,
            target,
            (cors, ip, api_key, jwt),
            (throttle, validate, mapping, preserve_host),
        )| GenRoute {
            path,
            method,
            target,
            cors,
            ip,
            api_key,
            jwt,
            throttle,
            validate,
            mapping,
            preserve_host,
        },
    )
}

fn quoted(list: &[String]) -> String {
    let q: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", q.join(", "))
}

/// A TOML config with `routes` (one per distinct path and method) and
/// maybe a stage and gateway responses.
fn toml(routes: &[GenRoute], stage: bool, responses: bool) -> String {
    let mut t = String::from(UPSTREAM);
    if stage {
        t = t.replace("workers = 1\n", "workers = 1\nstage = \"/prod\"\n");
    }
    let mut seen = Vec::new();
    for r in routes {
        if seen.contains(&(r.path, r.method)) {
            continue;
        }
        seen.push((r.path, r.method));
        let path = PATHS[r.path];
        let _ = write!(
            t,
            "\n[[route]]\npath = {path:?}\nmethods = [{:?}]\npreserve_host = {}\n",
            METHODS[r.method], r.preserve_host
        );
        match &r.target {
            Target::Upstream => t.push_str("upstream = \"app\"\n"),
            Target::Uri(query) => {
                let inner = path.replace('+', "");
                let q = if *query { "?from=gw" } else { "" };
                let _ = writeln!(
                    t,
                    "uri = \"http://app/v1{}{q}\"",
                    inner.trim_end_matches('/')
                );
            }
            Target::Mock(status, body) => {
                let _ = write!(t, "[route.mock]\nstatus = {status}\n");
                if let Some(b) = body {
                    let _ = writeln!(t, "body = {b:?}");
                }
            }
        }
        if let Some(o) = &r.cors {
            let _ = write!(
                t,
                "[route.cors]\nallow_origins = {}\nallow_headers = [\"content-type\"]\nmax_age = \"60s\"\n",
                quoted(o)
            );
        }
        if let Some((allow, deny)) = &r.ip {
            let _ = write!(
                t,
                "[route.ip]\nallow = {}\ndeny = {}\n",
                quoted(allow),
                quoted(deny)
            );
        }
        if let Some(source) = &r.api_key {
            let _ = write!(t, "[route.api_key]\nsource = {source:?}\n");
        }
        if let Some((aud, scopes, custom)) = &r.jwt {
            let _ = write!(
                t,
                "[route.jwt]\nissuer = \"https://issuer.example\"\naudience = {}\nscopes = {}\n",
                quoted(aud),
                quoted(scopes)
            );
            if *custom {
                t.push_str("jwks_url = \"http://127.0.0.1:9/keys\"\n");
            } else {
                t.push_str("jwks_url = \"https://issuer.example/.well-known/jwks.json\"\n");
            }
        }
        if let Some((rate, burst)) = r.throttle {
            let _ = write!(t, "[route.throttle]\nrate = {rate}\n");
            if let Some(b) = burst {
                let _ = writeln!(t, "burst = {b}");
            }
        }
        if let Some((headers, query)) = &r.validate
            && !(headers.is_empty() && query.is_empty())
        {
            let _ = write!(
                t,
                "[route.validate]\nrequired_headers = {}\nrequired_query = {}\n",
                quoted(headers),
                quoted(query)
            );
        }
        if let Some(v) = &r.mapping
            && !matches!(r.target, Target::Mock(..))
        {
            let _ = write!(
                t,
                "[route.mapping]\nrequest = {{ \"overwrite:header.x-from\" = {v:?} }}\n"
            );
        }
    }
    if responses {
        t.push_str("\n[gateway_responses.4xx]\nbody = \"{\\\"error\\\": $context.error.messageString}\"\nheaders = { x-gw = \"1\" }\n");
        t.push_str("\n[gateway_responses.\"429\"]\nstatus = 503\ncontent_type = \"text/plain\"\nbody = \"slow down\"\n");
        t.push_str("\n[gateway_responses.\"418\"]\nbody = \"teapot\"\n");
    }
    t
}

/// What the TOML keeps when its routes come from the export: everything
/// but routes, the stage and the gateway responses.
fn without_routes(text: &str) -> String {
    let mut out = String::new();
    let mut keep = true;
    for line in text.lines() {
        if line.starts_with("[[route]]") || line.starts_with("[gateway_responses") {
            keep = false;
        } else if line.starts_with("[[") && !line.starts_with("[[route")
            || line.starts_with("[server]")
        {
            keep = true;
        }
        if keep && !line.starts_with("stage = ") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn import_of_export_serves_the_same(
        routes in prop::collection::vec(route(), 1..6),
        stage in any::<bool>(),
        responses in any::<bool>(),
    ) {
        let dir = Scratch::new("roundtrip");
        let text = toml(&routes, stage, responses);
        let original = dir.write("ringway.toml", &text);
        let (before, file, _) = load_model(&Sources { config: Some(original), ..Default::default() }, None, &Default::default())
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let doc = export::document(&file, &dir.0);
        // Half the cases go through the YAML writer, half through JSON.
        let written = if stage { export::yaml(&doc) } else { serde_json::to_string_pretty(&doc).unwrap() };
        dir.write("api.yaml", &written);
        let again = format!("{}\n[[openapi]]\nfile = \"api.yaml\"\n", without_routes(&text));
        let path = dir.write("again.toml", &again);
        let (after, warnings) = load_toml(&path)
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- toml\n{text}\n--- export\n{written}")))?;
        // Only the notes on statuses ringway shares between response types.
        let unexpected: Vec<_> = warnings.iter().filter(|w| !w.message.contains("keys gateway responses by status")).collect();
        prop_assert!(unexpected.is_empty(), "{:?}\n{}", unexpected, written);
        prop_assert_eq!(served(&before), served(&after), "\n--- toml\n{}\n--- export\n{}", text, written);
    }
}
