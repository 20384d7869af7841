//! `engine/src/proxy/LIFECYCLE.md` names the phase functions of an exchange
//! and quotes the read buffer's size. This test keeps it true: every phase
//! heading (`### N. Title (`function`)`) is numbered 1, 2, 3… in order, names
//! a function that exists under `engine/src/proxy/`, and the size quoted
//! next to `BUF_SIZE` is the constant's value.

use std::path::Path;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proxy/LIFECYCLE.md");
    std::fs::read_to_string(path).expect("LIFECYCLE.md is readable")
}

/// The text of every `.rs` file under `engine/src/proxy/`.
fn proxy_sources() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proxy");
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect("proxy/ is readable") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(path).expect("a source file"));
        }
    }
    text
}

/// The names in backticks in `line`.
fn backticked(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

fn defines(sources: &str, name: &str) -> bool {
    ["(", "<"]
        .iter()
        .any(|next| sources.contains(&format!("fn {name}{next}")))
}

#[test]
fn every_phase_names_a_function_that_exists_in_order() {
    let (doc, sources) = (doc(), proxy_sources());
    let phases: Vec<(&str, &str)> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|l| {
            l.split_once(". ")
                .expect("a phase heading is `### N. Title (`fn`)`")
        })
        .collect();
    assert!(
        phases.len() >= 10,
        "the exchange has its phases: {phases:?}"
    );
    for (i, (number, title)) in phases.iter().enumerate() {
        assert_eq!(
            number.parse::<usize>(),
            Ok(i + 1),
            "phase {title:?} is numbered {number}"
        );
        let names = backticked(title);
        assert_eq!(names.len(), 1, "phase {title:?} names one function");
        assert!(
            defines(&sources, names[0]),
            "phase {number} names `{}`, which is not a function in engine/src/proxy/",
            names[0]
        );
    }
}

#[test]
fn the_tunnel_and_loop_functions_exist() {
    let (doc, sources) = (doc(), proxy_sources());
    for line in doc.lines().filter(|l| l.starts_with("## ")) {
        for name in backticked(line) {
            // Function names only (not `conn.rs`, not `ringway reload`).
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                assert!(
                    defines(&sources, name),
                    "{line:?} names `{name}`, which does not exist"
                );
            }
        }
    }
}

#[test]
fn the_quoted_buffer_size_is_buf_size() {
    let doc = doc().replace('\n', " ");
    let quoted = doc
        .split("`BUF_SIZE`, ")
        .nth(1)
        .expect("LIFECYCLE.md quotes `BUF_SIZE`, N KiB");
    let kib: usize = quoted
        .split(" KiB")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("a number of KiB after `BUF_SIZE`");
    assert_eq!(kib * 1024, ringway::proxy::local::BUF_SIZE);
}
