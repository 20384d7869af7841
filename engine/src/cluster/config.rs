//! `[cluster]`: the file model and its checks.
//!
//! ```toml
//! [cluster]
//! redis = "redis://127.0.0.1:6379/0"   # or rediss://… (TLS), redis+unix:///path
//! key_prefix = "ringway:"              # default
//! sync_interval = "50ms"               # default; at least 1ms
//! on_redis_down = "local"              # or "deny"
//! ca = "redis-ca.pem"                  # rediss:// only: trust this CA (default: the system store)
//! ```

use crate::config::units::Dur;
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_PREFIX: &str = "ringway:";
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(50);

/// The `[cluster]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub redis: Spanned<String>,
    pub key_prefix: Option<Spanned<String>>,
    pub sync_interval: Option<Spanned<Dur>>,
    pub on_redis_down: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
}

/// What an instance does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDown {
    /// Keep serving, enforcing this instance's share of each limit.
    Local,
    /// Answer 503 on routes whose limits are fleet-wide.
    Deny,
}

/// `[cluster]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The URL as written (for logs, with any password removed).
    pub shown: String,
    /// The URL handed to the Redis client.
    pub url: String,
    pub prefix: String,
    pub interval: Duration,
    pub on_down: OnDown,
    /// PEM CA bundle for `rediss://`.
    pub ca: Option<PathBuf>,
}

/// One problem: where (byte range in the config text), the key under
/// `cluster.`, and what is wrong.
pub type Problem = (Range<usize>, &'static str, String);

/// Checks `[cluster]`; paths are relative to `base` (the config's folder).
pub fn compile(s: &Section, base: &Path) -> Result<ClusterConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    let url = s.redis.get_ref().trim().to_owned();
    if let Err(e) = redis::parse_redis_url(&url)
        .ok_or("not a URL")
        .and_then(|u| match u.scheme() {
            "redis" | "rediss" | "redis+unix" | "unix" => Ok(()),
            _ => Err("the scheme must be redis://, rediss:// or redis+unix://"),
        })
        .and_then(|()| {
            redis::Client::open(url.as_str())
                .map(|_| ())
                .map_err(|_| "not a Redis URL")
        })
    {
        problems.push((s.redis.span(), "redis", format!("{url:?}: {e}")));
    }
    let interval = s
        .sync_interval
        .as_ref()
        .map_or(DEFAULT_SYNC_INTERVAL, |d| d.get_ref().0);
    if interval < Duration::from_millis(1) {
        let span = s
            .sync_interval
            .as_ref()
            .map(|d| d.span())
            .unwrap_or_default();
        problems.push((span, "sync_interval", "must be at least 1ms".into()));
    }
    let on_down = match s.on_redis_down.as_ref().map(|v| v.get_ref().as_str()) {
        None | Some("local") => OnDown::Local,
        Some("deny") => OnDown::Deny,
        Some(other) => {
            let span = s
                .on_redis_down
                .as_ref()
                .map(|v| v.span())
                .unwrap_or_default();
            problems.push((
                span,
                "on_redis_down",
                format!("{other:?}: use \"local\" or \"deny\""),
            ));
            OnDown::Local
        }
    };
    let prefix = s
        .key_prefix
        .as_ref()
        .map_or(DEFAULT_PREFIX.to_owned(), |p| p.get_ref().clone());
    if let Some(p) = &s.key_prefix
        && p.get_ref()
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        problems.push((
            p.span(),
            "key_prefix",
            "no spaces or control characters".into(),
        ));
    }
    let ca = s.ca.as_ref().map(|c| base.join(c.get_ref()));
    if let (Some(path), Some(c)) = (&ca, &s.ca)
        && !path.is_file()
    {
        problems.push((
            c.span(),
            "ca",
            format!("{} is not a readable file", path.display()),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ClusterConfig {
        shown: without_password(&url),
        url,
        prefix,
        interval,
        on_down,
        ca,
    })
}

/// The URL with a password (`redis://user:secret@host`) replaced by `***`.
fn without_password(url: &str) -> String {
    match redis::parse_redis_url(url) {
        Some(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<ClusterConfig, Vec<&'static str>> {
        let s: Section = toml::from_str(text).unwrap();
        compile(&s, Path::new("/")).map_err(|p| p.into_iter().map(|(_, k, _)| k).collect())
    }

    #[test]
    fn defaults_and_values() {
        let c = check("redis = \"redis://127.0.0.1:6379/0\"").unwrap();
        assert_eq!(c.prefix, "ringway:");
        assert_eq!(c.interval, Duration::from_millis(50));
        assert_eq!(c.on_down, OnDown::Local);
        let c = check(
            "redis = \"redis://u:pw@127.0.0.1:6390/2\"\nkey_prefix = \"gw:\"\nsync_interval = \"10ms\"\non_redis_down = \"deny\"",
        )
        .unwrap();
        assert_eq!((c.prefix.as_str(), c.on_down), ("gw:", OnDown::Deny));
        assert!(!c.shown.contains("pw"), "{}", c.shown);
    }

    #[test]
    fn every_problem_is_named() {
        assert_eq!(
            check("redis = \"http://x\"\nsync_interval = \"0s\"\non_redis_down = \"maybe\""),
            Err(vec!["redis", "sync_interval", "on_redis_down"])
        );
        assert_eq!(check("redis = \"::::\""), Err(vec!["redis"]));
        assert_eq!(
            check("redis = \"rediss://h:1\"\nca = \"/nonexistent/ca.pem\""),
            Err(vec!["ca"])
        );
    }
}
