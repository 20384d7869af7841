//! Stale binary detection: the tests spawn the built `ringway`, and
//! `cargo nextest run` after an edit does not rebuild it. A binary older than
//! the newest source of the crates it is built from fails the tests with the
//! command that fixes it, instead of quietly testing yesterday's code.
//!
//! Modification times are enough: a fresh clone's sources all date from the
//! checkout, and the build that follows writes a newer binary; cargo relinks
//! (and so rewrites) the binary whenever any of these sources changed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The source folders of the crates linked into the `ringway` binary.
const SOURCES: &[&str] = &["engine/src", "router/src", "tls/src", "loadgen/src"];

/// `Ok` when `bin` is at least as new as every source file; else what to do.
pub fn check(bin: &Path) -> Result<(), String> {
    static VERDICT: OnceLock<Result<(), String>> = OnceLock::new();
    VERDICT.get_or_init(|| verdict(bin)).clone()
}

fn verdict(bin: &Path) -> Result<(), String> {
    let built =
        modified(bin).ok_or_else(|| format!("cannot read the mtime of {}", bin.display()))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let Some((newest, changed)) = SOURCES
        .iter()
        .filter_map(|dir| newest_file(&root.join(dir)))
        .max_by_key(|(_, t)| *t)
    else {
        // Not run from a source tree (an installed test binary): nothing to compare.
        return Ok(());
    };
    if changed <= built {
        return Ok(());
    }
    let after = changed.duration_since(built).unwrap_or_default();
    Err(format!(
        "{} is stale: {} changed {:.0?} after it was built, so these tests would run an old ringway.\n\
         Rebuild the binaries first: cargo build --workspace --bins && cargo nextest run --workspace",
        bin.display(),
        newest.strip_prefix(root).unwrap_or(&newest).display(),
        after
    ))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The most recently modified `.rs` file under `dir`, recursively (editors'
/// swap files are no reason to rebuild).
fn newest_file(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "rs")
                && let Ok(t) = meta.modified()
                && newest.as_ref().is_none_or(|(_, n)| t > *n)
            {
                newest = Some((path, t));
            }
        }
    }
    newest
}
