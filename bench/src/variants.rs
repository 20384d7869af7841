//! The variants of the policy benchmark: ringway with no policy, with each
//! of CORS, API key (with a usage plan), throttle and JWT (RS256) alone (JWT
//! twice: with the verified-token cache, and with it off), and with all four; nginx as a plain proxy, and nginx with the nearest it has
//! (CORS fields with `add_header … always`, `limit_req` per client address).
//! Every request of every variant carries the same fields (`Origin`,
//! `X-Api-Key`, `Authorization: Bearer`), so the variants differ only in
//! what the proxy does with them.

use crate::jwt::{self, Rs256};
use crate::proxy::{Check, Policies, Target};

/// The `Origin` every request sends: allowed by both CORS setups.
pub const ORIGIN: &str = "https://app.example.com";
/// The API key every request sends.
const API_KEY: &str = "bench-key-7d2f4a91c3";

/// The ringway policies a variant turns on, on both of its routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RingwayPolicies {
    pub cors: bool,
    pub api_key: bool,
    pub throttle: bool,
    pub jwt: bool,
    /// With `jwt`: `cache = false`, a signature check on every request.
    pub jwt_uncached: bool,
    /// With `throttle`: keyed on a request field that takes 10,000 values
    /// over the load (instead of the client address, one key on loopback).
    pub throttle_spread: bool,
    /// With `api_key`: cluster mode, the plan's bucket and quota shared
    /// through a Redis the suite starts.
    pub cluster: bool,
}

/// Distinct `X-Client` values of the spread-keys variant.
pub const SPREAD_KEYS: usize = 10_000;

/// A proxy and what it is set up to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "proxy", rename_all = "lowercase")]
pub enum Setup {
    Ringway(RingwayPolicies),
    Nginx {
        /// CORS fields (`add_header … always`) and `limit_req`.
        cors_and_limit_req: bool,
    },
}

/// One line of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Variant {
    /// Stable name, used by `--variants` (`ringway-jwt`).
    pub key: &'static str,
    pub title: &'static str,
    pub setup: Setup,
}

impl Variant {
    pub fn target(&self) -> Target {
        match self.setup {
            Setup::Ringway(_) => Target::Ringway,
            Setup::Nginx { .. } => Target::Nginx,
        }
    }

    /// ringway with no policy, or nginx as a plain proxy: the baselines.
    pub fn is_plain(&self) -> bool {
        match self.setup {
            Setup::Ringway(p) => p == RingwayPolicies::default(),
            Setup::Nginx { cors_and_limit_req } => !cors_and_limit_req,
        }
    }

    /// Whether the proxy adds CORS fields to the responses.
    fn cors(&self) -> bool {
        match self.setup {
            Setup::Ringway(p) => p.cors,
            Setup::Nginx { cors_and_limit_req } => cors_and_limit_req,
        }
    }

    /// Whether the variant needs a Redis (cluster mode).
    pub fn needs_redis(&self) -> bool {
        matches!(self.setup, Setup::Ringway(p) if p.cluster)
    }

    /// The proxy configuration, request fields and live checks of this
    /// variant; `redis` is the suite's Redis URL (cluster variants).
    pub fn policies(&self, rs256: &Rs256, redis: Option<&str>) -> Policies {
        let fields = request_fields(&rs256.token);
        let without = |name: &str| -> Vec<String> {
            fields
                .iter()
                .filter(|f| !f.to_ascii_lowercase().starts_with(name))
                .cloned()
                .collect()
        };
        let mut checks = vec![Check {
            what: if self.cors() {
                "a request with every field passes and gets Access-Control-Allow-Origin".into()
            } else {
                "a request with every field passes, without CORS fields".into()
            },
            fields: fields.clone(),
            status: 200,
            field: Some((
                "access-control-allow-origin".into(),
                self.cors().then(|| ORIGIN.to_string()),
            )),
        }];
        let mut p = Policies {
            label: self.key.to_string(),
            fields: fields.clone(),
            ..Policies::default()
        };
        match self.setup {
            Setup::Ringway(r) => {
                if r.cors {
                    p.ringway_route.push_str(RINGWAY_CORS);
                }
                if r.api_key {
                    p.ringway_tables.push_str(&ringway_key_tables());
                    p.ringway_route.push_str(RINGWAY_API_KEY);
                    checks.push(Check {
                        what: "a request without an API key is refused".into(),
                        fields: without("x-api-key:"),
                        status: 403,
                        field: None,
                    });
                }
                if r.cluster {
                    let url = redis.unwrap_or("redis://127.0.0.1:6379/0");
                    p.ringway_tables.push_str(&format!(
                        "\n[cluster]\nredis = \"{url}\"\nkey_prefix = \"bench:\"\n"
                    ));
                }
                if r.throttle && r.throttle_spread {
                    p.ringway_route.push_str(RINGWAY_THROTTLE_SPREAD);
                    p.spread_keys = SPREAD_KEYS;
                } else if r.throttle {
                    p.ringway_route.push_str(RINGWAY_THROTTLE);
                }
                if r.jwt {
                    p.ringway_route.push_str(&ringway_jwt(rs256));
                    if r.jwt_uncached {
                        p.ringway_route.push_str("cache = false\n");
                    }
                    checks.push(Check {
                        what: "a request without a token is refused".into(),
                        fields: without("authorization:"),
                        status: 401,
                        field: None,
                    });
                }
            }
            Setup::Nginx { cors_and_limit_req } => {
                if cors_and_limit_req {
                    p.nginx_http.push_str(NGINX_HTTP);
                    p.nginx_location.push_str(NGINX_LOCATION);
                }
            }
        }
        p.checks = checks;
        p
    }

    /// The configuration the variant adds, for the report.
    pub fn config_text(&self, rs256: &Rs256) -> String {
        let p = self.policies(rs256, Some("redis://127.0.0.1:<port>/0"));
        match self.setup {
            Setup::Ringway(_) => format!("{}{}", p.ringway_tables, p.ringway_route),
            Setup::Nginx { .. } if p.nginx_http.is_empty() && p.nginx_location.is_empty() => {
                String::new()
            }
            Setup::Nginx { .. } => format!(
                "# in http {{ }}{}\n# in location / {{ }}\n{}",
                p.nginx_http, p.nginx_location
            ),
        }
    }
}

/// Every variant, in run order.
pub fn all() -> Vec<Variant> {
    let rw = |cors, api_key, throttle, jwt| {
        Setup::Ringway(RingwayPolicies {
            cors,
            api_key,
            throttle,
            jwt,
            ..RingwayPolicies::default()
        })
    };
    vec![
        Variant {
            key: "ringway-plain",
            title: "ringway, no policy",
            setup: rw(false, false, false, false),
        },
        Variant {
            key: "ringway-cors",
            title: "ringway, CORS",
            setup: rw(true, false, false, false),
        },
        Variant {
            key: "ringway-api-key",
            title: "ringway, API key + usage plan",
            setup: rw(false, true, false, false),
        },
        Variant {
            key: "ringway-throttle",
            title: "ringway, throttle per client IP (one key)",
            setup: rw(false, false, true, false),
        },
        Variant {
            key: "ringway-throttle-10k",
            title: "ringway, throttle over 10,000 keys (a header)",
            setup: Setup::Ringway(RingwayPolicies {
                throttle: true,
                throttle_spread: true,
                ..RingwayPolicies::default()
            }),
        },
        Variant {
            key: "ringway-api-key-cluster",
            title: "ringway, API key + usage plan, cluster mode (Redis)",
            setup: Setup::Ringway(RingwayPolicies {
                api_key: true,
                cluster: true,
                ..RingwayPolicies::default()
            }),
        },
        Variant {
            key: "ringway-jwt",
            title: "ringway, JWT RS256",
            setup: rw(false, false, false, true),
        },
        Variant {
            key: "ringway-jwt-uncached",
            title: "ringway, JWT RS256, token cache off",
            setup: Setup::Ringway(RingwayPolicies {
                jwt: true,
                jwt_uncached: true,
                ..RingwayPolicies::default()
            }),
        },
        Variant {
            key: "ringway-all",
            title: "ringway, CORS + API key + throttle + JWT",
            setup: rw(true, true, true, true),
        },
        Variant {
            key: "nginx-plain",
            title: "nginx, plain proxy",
            setup: Setup::Nginx {
                cors_and_limit_req: false,
            },
        },
        Variant {
            key: "nginx-cors-limit",
            title: "nginx, CORS fields + limit_req",
            setup: Setup::Nginx {
                cors_and_limit_req: true,
            },
        },
    ]
}

/// The fields every request of every variant carries.
pub fn request_fields(token: &str) -> Vec<String> {
    vec![
        format!("Origin: {ORIGIN}"),
        format!("X-Api-Key: {API_KEY}"),
        format!("Authorization: Bearer {token}"),
    ]
}

/// The issue's CORS example.
const RINGWAY_CORS: &str = r#"
[route.cors]
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST"]
allow_headers = ["content-type", "authorization", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = "10m"
"#;

const RINGWAY_API_KEY: &str = r#"
[route.api_key]
source = "header:x-api-key"
"#;

/// A rate far above anything one core serves: never a 429.
const RINGWAY_THROTTLE: &str = r#"
[route.throttle]
rate = 1e9
burst = 1e9
key = "client_ip"
"#;

/// The same, keyed on `X-Client`, which the load spreads over
/// [`SPREAD_KEYS`] values (the keyed map's bound is 100,000).
const RINGWAY_THROTTLE_SPREAD: &str = r#"
[route.throttle]
rate = 1e9
burst = 1e9
key = "header:x-client"
"#;

/// The key and its plan: limits far above anything one core serves.
fn ringway_key_tables() -> String {
    format!(
        r#"
[[usage_plan]]
name = "bench"
rate = 1e9
burst = 1e9
quota = {{ limit = 1000000000000, period = "day" }}

[[api_key]]
name = "bench-client"
value = "{API_KEY}"
plan = "bench"
"#
    )
}

/// The issue's JWT example, with the benchmark's JWKS file.
fn ringway_jwt(rs256: &Rs256) -> String {
    format!(
        r#"
[route.jwt]
issuer = "{}"
audience = ["{}"]
jwks_file = "{}"
scopes = ["{}"]
forward_claims = {{ sub = "x-user-id" }}
"#,
        jwt::ISSUER,
        jwt::AUDIENCE,
        rs256.jwks_file.display(),
        jwt::SCOPE
    )
}

/// nginx's side of CORS and rate limiting: the same allowed origins as
/// ringway's list (exact, or one label under example.com), fields only for
/// an allowed origin (an empty value adds no field), and a per-address
/// request limit far above anything one core serves.
const NGINX_HTTP: &str = r#"
    map $http_origin $cors_origin {
        default "";
        "https://app.example.com" $http_origin;
        "~^https://[^./]+\.example\.com$" $http_origin;
    }
    map $cors_origin $cors_credentials {
        default "true";
        "" "";
    }
    map $cors_origin $cors_expose {
        default "x-request-id";
        "" "";
    }
    map "$request_method:$http_access_control_request_method" $cors_preflight {
        default 0;
        "~^OPTIONS:." 1;
    }
    limit_req_zone $binary_remote_addr zone=per_ip:1m rate=1000000r/s;
"#;

/// In `location /`: the limit, preflights answered here (204), and the CORS
/// fields on every response, errors included; the upstream's own CORS fields
/// are replaced, as ringway does.
const NGINX_LOCATION: &str = r#"            limit_req zone=per_ip burst=100000 nodelay;
            if ($cors_preflight) {
                add_header Access-Control-Allow-Origin $cors_origin always;
                add_header Access-Control-Allow-Credentials $cors_credentials always;
                add_header Access-Control-Allow-Methods "GET, POST" always;
                add_header Access-Control-Allow-Headers "content-type, authorization, x-api-key" always;
                add_header Access-Control-Max-Age 600 always;
                add_header Vary Origin always;
                return 204;
            }
            add_header Access-Control-Allow-Origin $cors_origin always;
            add_header Access-Control-Allow-Credentials $cors_credentials always;
            add_header Access-Control-Expose-Headers $cors_expose always;
            add_header Vary Origin always;
            proxy_hide_header Access-Control-Allow-Origin;
            proxy_hide_header Access-Control-Allow-Credentials;
            proxy_hide_header Access-Control-Expose-Headers;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn material(dir: &std::path::Path) -> Rs256 {
        // A JWKS with a well-formed 2048-bit modulus; nothing is verified here.
        let jwks_file = dir.join("jwks.json");
        let n = jwt::base64url(&[0xc5; 256]);
        std::fs::write(
            &jwks_file,
            format!(r#"{{"keys":[{{"kty":"RSA","kid":"k","alg":"RS256","n":"{n}","e":"AQAB"}}]}}"#),
        )
        .unwrap();
        Rs256 {
            jwks_file,
            token: "a.b.c".into(),
            description: String::new(),
        }
    }

    #[test]
    fn every_ringway_variant_compiles() {
        let dir = std::env::temp_dir().join(format!("rwbench-variants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = material(&dir);
        for v in all().iter().filter(|v| v.target() == Target::Ringway) {
            let p = v.policies(&m, None);
            let text = format!(
                "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n{}\n[[route]]\npath = \"/\"\nupstream = \"app\"\n{}",
                p.ringway_tables, p.ringway_route
            );
            if let Err(e) = ringway::config::from_str(&dir.join("gateway.toml"), &text) {
                panic!("{}: {e}\n{text}", v.key);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_request_carries_the_same_fields_and_checks_match_the_policies() {
        let dir = std::env::temp_dir().join(format!("rwbench-checks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let m = material(&dir);
        let variants = all();
        let fields = variants[0].policies(&m, None).fields;
        assert_eq!(fields.len(), 3);
        for v in &variants {
            let p = v.policies(&m, None);
            assert_eq!(p.fields, fields, "{}", v.key);
            let statuses: Vec<u16> = p.checks.iter().map(|c| c.status).collect();
            let want: &[u16] = match v.key {
                "ringway-api-key" | "ringway-api-key-cluster" => &[200, 403],
                "ringway-jwt" | "ringway-jwt-uncached" => &[200, 401],
                "ringway-all" => &[200, 403, 401],
                _ => &[200],
            };
            assert_eq!(statuses, want, "{}", v.key);
            assert_eq!(v.is_plain(), v.key.ends_with("-plain"), "{}", v.key);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
