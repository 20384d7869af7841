//! Dot segments are resolved before routing, on every route: traversal
//! attempts that climb above `/` are 400 and never forwarded; the rest is
//! forwarded normalized, every other byte as the client sent it.

use ringway_tests::{Gateway, Origin, send_raw};
use std::net::SocketAddr;

fn config(app: SocketAddr, server: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n{server}\n\n[[upstream]]\nname = \"app\"\ntargets = [\"{app}\"]\n\n\
         [[route]]\npath = \"/files/{{path+}}\"\nuri = \"http://app/srv/{{path}}\"\n\n\
         [[route]]\npath = \"/{{proxy+}}\"\nupstream = \"app\"\n"
    )
}

fn get(gw: &Gateway, target: &str) -> u16 {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    send_raw(gw.addr, raw.as_bytes()).status
}

/// `target` is answered `status`; the origin saw `forwarded` (or nothing).
fn case(gw: &Gateway, origin: &Origin, target: &str, status: u16, forwarded: Option<&str>) {
    let before = origin.seen().len();
    assert_eq!(get(gw, target), status, "{target}");
    let seen = origin.seen();
    match forwarded {
        None => assert_eq!(seen.len(), before, "{target} reached the origin"),
        Some(want) => {
            assert_eq!(seen.len(), before + 1, "{target}");
            assert_eq!(seen[before].target, want, "{target}");
        }
    }
}

const CLIMBING: &[&str] = &[
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2E%2E/etc/passwd",
    "/a/b/.%2e/.%2e/%2e./../etc/passwd",
    "/..",
    "/a/../..",
    "/./%2E./x",
];

#[test]
fn climbing_paths_are_400_on_a_proxy_route_and_a_template_route() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, ""));
    for path in CLIMBING {
        case(&gw, &origin, path, 400, None);
        // One more `..` than the `/files` segment absorbs.
        case(&gw, &origin, &format!("/files/..{path}"), 400, None);
        case(&gw, &origin, &format!("{path}?q=1"), 400, None);
    }
}

#[test]
fn dot_segments_are_resolved_and_the_rest_kept() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, ""));
    for (sent, forwarded) in [
        ("/a/b/../c", "/a/c"),
        ("/a/./b/%2e/c?x=1&y=..", "/a/b/c?x=1&y=.."),
        ("/a/%2F/../B/%41", "/a/B/%41"),
        ("/a/b/.%2E/", "/a/"),
        ("/a//../b", "/a/b"),
        ("/a/b/..", "/a/"),
        // Only look like dot segments: forwarded as sent.
        ("/a/..b/c", "/a/..b/c"),
        ("/a/.../c", "/a/.../c"),
        ("/%2e%2efoo", "/%2e%2efoo"),
        ("/a//b", "/a//b"),
        // The template route sees the normalized path too.
        ("/files/a/../b.txt", "/srv/b.txt"),
        ("/files/x/%2e%2e/y/./z", "/srv/y/z"),
        // Climbing out of /files/ lands on the catch-all, normalized.
        ("/files/../other", "/other"),
    ] {
        case(&gw, &origin, sent, 200, Some(forwarded));
    }
}

#[test]
fn the_stage_is_removed_after_normalization() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, "stage = \"/prod\""));
    case(&gw, &origin, "/prod/a/../b", 200, Some("/b"));
    case(&gw, &origin, "/x/../prod/c", 200, Some("/c"));
    case(&gw, &origin, "/prod/files/a/./../f", 200, Some("/srv/f"));
    case(&gw, &origin, "/prod/../../etc/passwd", 400, None);
}

#[test]
fn merge_slashes_collapses_runs_when_asked() {
    let origin = Origin::echo();
    let gw = Gateway::start(&config(origin.addr, "merge_slashes = true"));
    case(&gw, &origin, "//a///b//", 200, Some("/a/b/"));
    case(&gw, &origin, "/files//x//y", 200, Some("/srv/x/y"));
    case(&gw, &origin, "//..//..//etc", 400, None);
}
