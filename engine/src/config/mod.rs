//! Configuration: the TOML file model, its compiler into a [`Snapshot`], and
//! errors that name file, line, column and key.
//!
//! Pipeline: text → [`model::File`] (`read`: serde, unknown keys rejected,
//! every structural error collected) →
//! [`compile`] (cross-checks, address resolution, limits) → `Snapshot`.
//! Each concern has its file: `server` (`[server]`), `upstreams`,
//! `routes` (`[[route]]`, `[[host]]`, the router), `api_keys`.

pub mod error;
pub mod model;
pub mod units;

mod api_keys;
mod read;
mod resilience;
mod routes;
mod server;
mod upstreams;

use crate::snapshot::{Snapshot, Timeouts};
use error::Collector;
pub use error::ConfigError;
use std::path::Path;
pub use upstreams::lookup;

/// Reads, parses and compiles a config file.
pub fn load(path: &Path) -> Result<Snapshot, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))?;
    from_str(path, &text)
}

/// Parses and compiles config text; `path` is only used to name the file in errors.
pub fn from_str(path: &Path, text: &str) -> Result<Snapshot, ConfigError> {
    compile_with(
        path,
        text,
        &crate::resilience::Resolved::default(),
        |_, _, _| Extension::default(),
    )
}

/// What an importer (`crate::openapi`) adds to a config before it compiles:
/// its documents' text, appended to the config text in the source the
/// compiler reports against (the spans of the model values it added point
/// into it), the segments that name those documents, and the problems it
/// found itself.
#[derive(Default)]
pub struct Extension {
    pub text: String,
    pub segments: Vec<error::Segment>,
    /// Span in the source (config text or appended text), key, message.
    pub problems: Vec<(std::ops::Range<usize>, String, String)>,
}

/// Like [`from_str`], with target names resolved as `resolved` says (the
/// checker thread's latest DNS answers; empty: ask now) and `extend`
/// adding to the file model once it is read. `extend` gets the model, the
/// config file's folder, and the offset at which the text it returns will
/// start in the source.
pub fn compile_with(
    path: &Path,
    text: &str,
    resolved: &crate::resilience::Resolved,
    extend: impl FnOnce(&mut model::File, &Path, usize) -> Extension,
) -> Result<Snapshot, ConfigError> {
    compile_model(path, text, resolved, extend).map(|(snapshot, _)| snapshot)
}

/// Like [`compile_with`], keeping the file model the snapshot was compiled
/// from (what `ringway export-openapi` writes).
pub fn compile_model(
    path: &Path,
    text: &str,
    resolved: &crate::resilience::Resolved,
    extend: impl FnOnce(&mut model::File, &Path, usize) -> Extension,
) -> Result<(Snapshot, model::File), ConfigError> {
    let mut c = Collector::new(text);
    let Some((mut file, renumber)) = read::read::<model::File>(&mut c) else {
        return c
            .finish(path, ())
            .map(|()| unreachable!("read records why"));
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let extension = extend(&mut file, base, text.len());
    let source = format!("{text}{}", extension.text);
    let mut c = Collector {
        source: &source,
        diagnostics: c.diagnostics,
        segments: extension.segments,
    };
    for (span, key, message) in extension.problems {
        c.at(span, key, message);
    }
    // What could be read compiles too, so its errors come in the same run.
    let structural = c.diagnostics.len();
    let snapshot = compile(path, &file, (text, resolved), &mut c);
    renumber.apply(&mut c, structural);
    c.finish(path, (snapshot, file))
}

fn compile(
    path: &Path,
    file: &model::File,
    (text, resolved): (&str, &crate::resilience::Resolved),
    c: &mut Collector<'_>,
) -> Snapshot {
    let s = &file.server;
    let base = path.parent().unwrap_or(Path::new("."));
    let server = server::compile_server(s, base, c);
    let upstreams = upstreams::compile_upstreams(file, base, resolved, c);
    let (routes, router) = routes::compile_routes(file, &upstreams.by_name, base, c);
    let trusted_proxies =
        crate::policy::ip::CidrSet::parse(&s.trusted_proxies, "server.trusted_proxies")
            .unwrap_or_else(|p| {
                c.at(p.span, p.key, p.message);
                Default::default()
            });
    let cluster = file.cluster.as_ref().and_then(|t| {
        crate::cluster::config::compile(t, base)
            .map_err(|problems| {
                for (span, key, message) in problems {
                    c.at(span, format!("cluster.{key}"), message);
                }
            })
            .ok()
    });
    let fleet = cluster.clone().map(crate::cluster::fleet);
    let api_keys = api_keys::compile_api_keys(file, base, fleet.as_ref(), c);
    let request_id = server::compile_request_id(s.request_id.as_ref(), c);
    let (gateway_responses, problems) = crate::policy::responses::compile(&file.gateway_responses);
    for p in problems {
        c.at(p.span, p.key, p.message);
    }
    let live = std::sync::Arc::new(crate::resilience::Live::new(
        upstreams.target_count,
        upstreams.list.len(),
    ));
    Snapshot {
        source: path.to_path_buf(),
        sources: crate::snapshot::Sources {
            config: Some(path.to_path_buf()),
            ..Default::default()
        },
        generation: 0,
        reloads: 0,
        listen: server.listen,
        listen_tls: server.listen_tls,
        listen_mode: server.listen_mode,
        h2: server.h2,
        admin: server.admin,
        access_log: server.access_log,
        workers: server.workers,
        pin: s.pin.get_ref().clone(),
        max_connections: s.max_connections.max(1),
        shutdown_timeout: s.shutdown_timeout.0,
        backlog: *s.backlog.get_ref(),
        splice_threshold: s.splice_threshold.0,
        merge_slashes: s.merge_slashes,
        forwarded: s.forwarded,
        driver: server.driver,
        limits: server.limits,
        timeouts: Timeouts {
            header_read: s.timeouts.header_read.0,
            keepalive_idle: s.timeouts.keepalive_idle.0,
            keepalive_park: s.timeouts.keepalive_park.0,
            body_idle: s.timeouts.body_idle.0,
            tunnel_idle: s.timeouts.tunnel_idle.0,
        },
        upstreams: upstreams.list,
        routes,
        router,
        trusted_proxies,
        api_keys,
        request_id,
        gateway_responses,
        target_count: upstreams.target_count,
        live,
        text: text.into(),
        resolved: resolved.clone(),
        cluster,
        #[cfg(feature = "fault-injection")]
        fault_panic_path: std::env::var_os("RINGWAY_FAULT_PANIC_PATH")
            .map(|p| p.into_encoded_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        match from_str(Path::new("t.toml"), text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_issue_config_compiles() {
        let text = "[server]\nlisten = [\"127.0.0.1:8080\"]\nworkers = 2\npin = false\n\n[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9000\"]\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n";
        let s = from_str(Path::new("t.toml"), text).unwrap();
        assert_eq!(s.workers, 2);
        assert_eq!(s.routes.len(), 1);
        assert_eq!(
            s.upstreams[0].targets[0].addr,
            "127.0.0.1:9000".parse().unwrap()
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = errors("[server]\nlisten = [\"127.0.0.1:1\"]\nworkerz = 2\n");
        assert!(e.starts_with("t.toml:3:1: key `server.workerz`"), "{e}");
        assert!(
            e.ends_with("did you mean `workers`?\n    3 | workerz = 2"),
            "{e}"
        );
    }

    #[test]
    fn bad_value_names_key() {
        let e = errors("[server.timeouts]\nheader_read = \"ten\"\n");
        assert!(e.contains("t.toml:2:"), "{e}");
        assert!(e.contains("header_read"), "{e}");
    }

    #[test]
    fn semantic_errors_all_reported() {
        let e = errors(
            "[[upstream]]\nname = \"app\"\ntargets = [\"nope\"]\n\n[[route]]\npath = \"x\"\nupstream = \"other\"\n",
        );
        assert!(e.contains("t.toml:3:12: key `upstream[0].targets`"), "{e}");
        assert!(e.contains("t.toml:6:8: key `route[0].path`"), "{e}");
        assert!(e.contains("t.toml:7:12: key `route[0].upstream`"), "{e}");
    }

    #[test]
    fn unknown_keys_elsewhere_get_the_nearest_known_key_if_any() {
        let e = errors("[[route]]\npath = \"/\"\nupstram = \"app\"\n");
        assert!(
            e.contains("key `route[0].upstram`: unknown field `upstram`: did you mean `upstream`?"),
            "{e}"
        );
        // Nothing near: the known keys are listed instead.
        let e = errors("[server]\nfrobnicate = 1\n");
        assert!(
            e.contains("unknown field `frobnicate`, expected one of"),
            "{e}"
        );
    }

    #[test]
    fn a_table_missing_a_key_is_dropped_and_later_indices_stay_the_files() {
        // route[0] has no path: one error for it, and route[1]'s own error
        // still names route[1].
        let e = errors(
            "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\n[[route]]\nupstream = \"app\"\n\n[[route]]\npath = \"/b\"\nupstream = \"other\"\n",
        );
        let lines: Vec<&str> = e.lines().filter(|l| l.starts_with("t.toml")).collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(lines[0].starts_with("t.toml:5:"), "{e}");
        assert!(
            lines[0].ends_with("key `route[0]`: missing field `path`"),
            "{e}"
        );
        assert!(
            lines[1].starts_with("t.toml:10:12: key `route[1].upstream`: no [[upstream]]"),
            "{e}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_one_error() {
        // Under a required key: the type error only, nothing about the
        // placeholder that keeps the table, or about what needs the upstream.
        for (text, want) in [
            (
                "[[upstream]]\nname = \"app\"\ntargets = \"127.0.0.1:9\"\n\n[[route]]\npath = \"/\"\nupstream = \"app\"\n",
                "t.toml:3:11: key `upstream[0].targets`: invalid type: string",
            ),
            (
                "[[upstream]]\nname = \"app\"\ntargets = [\"127.0.0.1:9\"]\n\n[[route]]\npath = 5\nupstream = \"app\"\n",
                "t.toml:6:8: key `route[0].path`: invalid type: integer",
            ),
        ] {
            let e = errors(text);
            assert_eq!(
                e.lines().filter(|l| l.starts_with("t.toml")).count(),
                1,
                "{e}"
            );
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let e = errors("[server\nworkers = = 2\n[[route]]\npath = \"/\" x\n");
        assert!(e.starts_with("t.toml:1:"), "{e}");
        assert!(e.contains("t.toml:4:"), "{e}");
    }
}
