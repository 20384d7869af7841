//! Dot-segment removal (RFC 3986 §5.2.4) for request paths, before routing.
//!
//! A proxy that forwards `/{proxy+}` unchanged must not hand a backend
//! `/../../etc/passwd`: many file servers resolve dot segments themselves,
//! after the gateway has decided which route (and which policies) apply.
//! So the gateway resolves them first, and routes, checks and forwards the
//! result.
//!
//! Rules, beyond the RFC's algorithm:
//! - `%2e` / `%2E` count as `.` when deciding whether a segment is a dot
//!   segment (`.`, `%2e`, `..`, `.%2e`, `%2e.`, `%2E%2e`); nothing else is
//!   decoded, and every byte of the segments that stay is kept as sent
//!   (other escapes, `%2F`, case).
//! - A path that would climb above `/` is refused ([`AboveRoot`]) instead
//!   of being clamped at the root: no client asks for that in good faith.
//! - With `merge_slashes`, runs of `/` collapse to one (nginx's
//!   `merge_slashes`), a trailing one kept.
//!
//! The common path has no dot segment and no `//`: [`needs_work`] answers
//! that in one pass without writing anything.

use std::fmt;

/// The path would climb above `/` (more `..` segments than segments before them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveRoot;

impl fmt::Display for AboveRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("path climbs above the root")
    }
}

impl std::error::Error for AboveRoot {}

/// True when `normalize` could change `path`: some segment starts with `.`
/// or `%2e`/`%2E`, or (with `merge_slashes`) is empty.
#[inline]
pub fn needs_work(path: &[u8], merge_slashes: bool) -> bool {
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'/' {
            match path.get(i + 1) {
                Some(b'.') => return true,
                Some(b'%') if is_escaped_dot(&path[i + 1..]) => return true,
                Some(b'/') if merge_slashes => return true,
                _ => {}
            }
        }
        i += 1;
    }
    false
}

/// `%2e` or `%2E` at the start of `s`.
#[inline]
fn is_escaped_dot(s: &[u8]) -> bool {
    s.len() >= 3 && s[0] == b'%' && s[1] == b'2' && (s[2] | 0x20) == b'e'
}

/// How many dots a segment is, if it is a dot segment (`.` → 1, `..` → 2).
fn dots(segment: &[u8]) -> Option<u8> {
    let mut n = 0u8;
    let mut rest = segment;
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if is_escaped_dot(rest) {
            rest = &rest[3..];
        } else {
            return None;
        }
        n += 1;
        if n > 2 {
            return None;
        }
    }
    (n > 0).then_some(n)
}

/// Removes the dot segments of `path` (which starts with `/`) in place and
/// returns its new length; `path[..len]` is the result. Segments that stay
/// keep every byte as sent. The result is never longer than the input, so
/// it is written over it, front to back, never overtaking what is still to
/// be read.
///
/// `/a/b/../c` → `/a/c`; `/a/./b/.` → `/a/b/`; `/a/..` → `/`;
/// `/..` → [`AboveRoot`].
pub fn normalize(path: &mut [u8], merge_slashes: bool) -> Result<usize, AboveRoot> {
    if path.first() != Some(&b'/') {
        // Not an origin-form path (`*`, or nothing): nothing to resolve.
        return Ok(path.len());
    }
    // `path[..w]` is the output so far: "/seg" pieces; popping one cuts
    // back to its '/'. `r` is where the next input segment starts.
    let mut w = 0;
    let mut r = 1;
    let mut trailing_slash;
    loop {
        let end = path[r..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(path.len(), |i| r + i);
        let last = end == path.len();
        trailing_slash = false;
        match dots(&path[r..end]) {
            Some(1) => trailing_slash = last,
            Some(_) => {
                let Some(cut) = path[..w].iter().rposition(|&b| b == b'/') else {
                    return Err(AboveRoot);
                };
                w = cut;
                trailing_slash = last;
            }
            None if r == end && merge_slashes && !last => {}
            None => {
                path[w] = b'/';
                path.copy_within(r..end, w + 1);
                w += 1 + end - r;
            }
        }
        if last {
            break;
        }
        r = end + 1;
    }
    if trailing_slash || w == 0 {
        path[w] = b'/';
        w += 1;
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(path: &str, merge: bool) -> Result<String, AboveRoot> {
        let mut buf = path.as_bytes().to_vec();
        let n = normalize(&mut buf, merge)?;
        buf.truncate(n);
        Ok(String::from_utf8(buf).unwrap())
    }

    #[test]
    fn dot_segments_are_removed() {
        for (input, want) in [
            ("/", "/"),
            ("/a/b/c", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/..", "/"),
            ("/.", "/"),
            ("/a/b/../../c/", "/c/"),
            ("/a//../b", "/a/b"),
            ("/a/%2e/b", "/a/b"),
            ("/a/%2E%2e/b", "/b"),
            ("/a/b/.%2e/c", "/a/c"),
            ("/a/b/%2e./c", "/a/c"),
            ("/files/./x%2Fy/%41", "/files/x%2Fy/%41"),
            ("/A/B/../C", "/A/C"),
        ] {
            assert_eq!(norm(input, false).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn climbing_above_the_root_is_refused() {
        for input in [
            "/..",
            "/../../../../etc/passwd",
            "/%2e%2e/%2e%2e/%2E%2E/etc/passwd",
            "/a/b/.%2e/.%2e/%2e./../etc/passwd",
            "/a/../..",
            "/./../x",
        ] {
            assert_eq!(norm(input, false), Err(AboveRoot), "{input}");
        }
    }

    #[test]
    fn segments_that_only_look_like_dots_stay() {
        for input in [
            "/a/..b/c",
            "/a/.../c",
            "/%2e%2efoo",
            "/a/.b",
            "/a/%2e%2e%2e",
            "/a/%2f../b",
            "/a/%2",
            "/a/.%2",
        ] {
            assert_eq!(norm(input, false).as_deref(), Ok(input), "{input}");
        }
    }

    #[test]
    fn paths_without_a_leading_slash_are_left_alone() {
        for input in ["", "*", "a/../b"] {
            assert_eq!(norm(input, true).as_deref(), Ok(input));
        }
    }

    #[test]
    fn slashes_merge_only_when_asked() {
        assert_eq!(norm("/a//b///c", false).as_deref(), Ok("/a//b///c"));
        assert_eq!(norm("/a//b///c", true).as_deref(), Ok("/a/b/c"));
        assert_eq!(norm("//a//", true).as_deref(), Ok("/a/"));
        assert_eq!(norm("//", true).as_deref(), Ok("/"));
        assert_eq!(norm("/a//..//b", true).as_deref(), Ok("/b"));
    }

    #[test]
    fn the_quick_check_agrees_with_the_rewrite() {
        for (input, merge) in [
            ("/a/b/c", false),
            ("/a/b.c/d", false),
            ("/a/.b", false),
            ("/a/%2E", false),
            ("/a/%2fb", false),
            ("/a//b", false),
            ("/a//b", true),
            ("/a/..", false),
        ] {
            let changed = norm(input, merge).map_or(true, |o| o != input);
            if changed {
                assert!(needs_work(input.as_bytes(), merge), "{input}");
            }
            if !needs_work(input.as_bytes(), merge) {
                assert_eq!(norm(input, merge).as_deref(), Ok(input), "{input}");
            }
        }
    }

    #[test]
    fn arbitrary_paths_never_panic_and_never_keep_a_dot_segment() {
        // A small deterministic generator over the interesting alphabet.
        let alphabet: [&str; 8] = ["/", ".", "..", "%2e", "%2E", "a", "%2", "//"];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut path = String::from("/");
            for _ in 0..(state % 9) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                path.push_str(alphabet[(state % 8) as usize]);
            }
            for merge in [false, true] {
                if let Ok(out) = norm(&path, merge) {
                    assert!(out.starts_with('/') && out.len() <= path.len());
                    let segments: Vec<&str> = out[1..].split('/').collect();
                    assert!(
                        segments.iter().all(|s| dots(s.as_bytes()).is_none()),
                        "{path} -> {out}"
                    );
                    assert_eq!(
                        norm(&out, merge).as_deref(),
                        Ok(&out[..]),
                        "normalizing {path} twice"
                    );
                }
            }
        }
    }
}
