//! `[cluster]`: the file model and its checks.
//!
//! ```toml
//! [cluster]
//! redis = "redis://127.0.0.1:6379/0"   # or rediss://… (TLS), redis+unix:///path,
//!                                      # redis+sentinel://[user:pass@]host:port[,host:port…]/master[/db]
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
    /// `redis+sentinel://`: the Sentinels to ask for the current primary.
    pub sentinel: Option<Sentinel>,
}

/// A primary found through Redis Sentinel, asked again on every reconnect
/// (so a failover moves the sync to the new primary).
#[derive(Debug, Clone, PartialEq)]
pub struct Sentinel {
    pub nodes: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// `redis+sentinel://[user[:password]@]host:port[,host:port…]/master[/db]`
/// (port 26379 when left out).
fn parse_sentinel(url: &str) -> Result<Sentinel, String> {
    let rest = &url[SENTINEL_SCHEME.len()..];
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hosts, path) = rest
        .split_once('/')
        .ok_or("name the primary: redis+sentinel://host:port/master")?;
    let mut nodes = Vec::new();
    for h in hosts.split(',') {
        let (host, port) = match h.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("{h:?}: not a host:port"))?,
            ),
            None => (h, 26379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{h:?}: no host"));
        }
        nodes.push((host.to_owned(), port));
    }
    let mut parts = path.split('/');
    let master = parts.next().unwrap_or_default();
    if master.is_empty() {
        return Err("name the primary: redis+sentinel://host:port/master".into());
    }
    let db = match parts.next() {
        None | Some("") => 0,
        Some(d) => d
            .parse()
            .map_err(|_| format!("{d:?}: not a database number"))?,
    };
    if parts.next().is_some() {
        return Err("expected /master or /master/db after the hosts".into());
    }
    let (username, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (Some(a.to_owned()), None),
        },
    };
    Ok(Sentinel {
        nodes,
        master: master.to_owned(),
        db,
        username,
        password,
    })
}

/// One problem: where (byte range in the config text), the key under
/// `cluster.`, and what is wrong.
pub type Problem = (Range<usize>, &'static str, String);

/// Checks `[cluster]`; paths are relative to `base` (the config's folder).
pub fn compile(s: &Section, base: &Path) -> Result<ClusterConfig, Vec<Problem>> {
    let mut problems = Vec::new();
    let url = s.redis.get_ref().trim().to_owned();
    let mut sentinel = None;
    if url.starts_with(SENTINEL_SCHEME) {
        match parse_sentinel(&url) {
            Ok(s) => sentinel = Some(s),
            Err(e) => problems.push((s.redis.span(), "redis", format!("{url:?}: {e}"))),
        }
    } else if let Err(e) = redis::parse_redis_url(&url)
        .ok_or("not a URL")
        .and_then(|u| match u.scheme() {
            "redis" | "rediss" | "redis+unix" | "unix" => Ok(()),
            _ => Err("the scheme must be redis://, rediss://, redis+unix:// or redis+sentinel://"),
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
        sentinel,
    })
}

/// The URL with a password (`redis://user:secret@host`) replaced by `***`.
fn without_password(url: &str) -> String {
    if let Some(rest) = url.strip_prefix(SENTINEL_SCHEME)
        && let Some((auth, hosts)) = rest.rsplit_once('@')
    {
        let user = auth.split_once(':').map_or(auth, |(u, _)| u);
        return format!("{SENTINEL_SCHEME}{user}:***@{hosts}");
    }
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
    fn sentinel_urls() {
        let c = check("redis = \"redis+sentinel://u:pw@a:26380,b/primary/3\"").unwrap();
        let s = c.sentinel.unwrap();
        assert_eq!(s.nodes, [("a".into(), 26380), ("b".into(), 26379)]);
        assert_eq!((s.master.as_str(), s.db), ("primary", 3));
        assert_eq!(
            (s.username.as_deref(), s.password.as_deref()),
            (Some("u"), Some("pw"))
        );
        assert!(!c.shown.contains("pw"), "{}", c.shown);
    }

    #[test]
    fn every_problem_is_named() {
        assert_eq!(
            check("redis = \"http://x\"\nsync_interval = \"0s\"\non_redis_down = \"maybe\""),
            Err(vec!["redis", "sync_interval", "on_redis_down"])
        );
        assert_eq!(check("redis = \"::::\""), Err(vec!["redis"]));
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:x/m",
            "redis+sentinel://h:1/",
            "redis+sentinel://h:1/m/zero",
            "redis+sentinel://:1/m",
        ] {
            assert_eq!(
                check(&format!("redis = \"{bad}\"")),
                Err(vec!["redis"]),
                "{bad}"
            );
        }
        assert_eq!(
            check("redis = \"rediss://h:1\"\nca = \"/nonexistent/ca.pem\""),
            Err(vec!["ca"])
        );
    }
}
