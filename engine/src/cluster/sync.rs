//! The sync thread: every `sync_interval` (or sooner, when a worker runs out
//! of its quota grant), one Lua script call reconciles every fleet limit
//! with Redis in one round trip, atomically:
//!
//! - `I` (heartbeat): this instance's id into a sorted set by time; entries
//!   older than three intervals (at least 3 s) go; the count is how many
//!   instances share the limits (for the `local` share during outages).
//! - `B` (bucket): add `n` requests to the fleet TAT (kept in Redis' clock,
//!   microseconds) and return how far ahead of now it runs.
//! - `Q` (quota): add what this instance admitted to the period's spent
//!   count, take back what it hands back, and grant up to `want` of what is
//!   left of `limit` in the period's counter; never more. An instance that
//!   is short while the fleet holds granted but unspent requests raises the
//!   period's reclaim flag; one that wants nothing learns whether the flag
//!   is up. Returns `granted:used:spent:flag`.
//! - `U` (usage): add `n` admitted requests to the key's count for the day.
//!
//! Redis' own `TIME` is the clock, so instances on different hosts need no
//! synchronised clocks. A failed call (connection refused, reset, timeout,
//! an unexpected reply, a NOSCRIPT after a restart is retried by the client
//! library once) puts what was taken back, marks Redis down, and the next
//! tick reconnects.

use super::{ClusterConfig, Fleet, FleetBucket, FleetQuota};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local a = 1
for i, key in ipairs(KEYS) do
  local kind = ARGV[a]
  if kind == 'I' then
    local horizon = tonumber(ARGV[a + 2])
    redis.call('ZADD', key, now, ARGV[a + 1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - horizon)
    redis.call('PEXPIRE', key, math.ceil(horizon / 1000) + 1000)
    out[i] = tostring(redis.call('ZCARD', key))
    a = a + 3
  elseif kind == 'B' then
    local n, interval, tol = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local tat = tonumber(redis.call('GET', key) or '0') or 0
    if tat < now then tat = now end
    tat = tat + n * interval
    redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil((tat - now + tol) / 1000) + 1000)
    out[i] = string.format('%.3f', tat - now)
    a = a + 4
  elseif kind == 'Q' then
    local want, limit, ttl = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local spent_n, give, hold = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
    local spent_key, flag_key = key .. ':spent', key .. ':reclaim'
    local used = tonumber(redis.call('GET', key) or '0') or 0
    local spent = tonumber(redis.call('GET', spent_key) or '0') or 0
    if spent_n > 0 then
      spent = redis.call('INCRBY', spent_key, spent_n)
      redis.call('PEXPIRE', spent_key, ttl)
    end
    give = math.min(give, used)
    if give > 0 then
      used = redis.call('DECRBY', key, give)
    end
    local grant = math.max(0, math.min(want, limit - used))
    if grant > 0 then
      used = redis.call('INCRBY', key, grant)
      redis.call('PEXPIRE', key, ttl)
    end
    local flag = 0
    if grant < want and spent < used then
      redis.call('SET', flag_key, '1', 'PX', hold)
      flag = 1
    elseif want == 0 then
      flag = redis.call('EXISTS', flag_key)
    end
    out[i] = grant .. ':' .. used .. ':' .. spent .. ':' .. flag
    a = a + 7
  elseif kind == 'U' then
    redis.call('HINCRBY', key, ARGV[a + 1], ARGV[a + 2])
    redis.call('PEXPIRE', key, 400 * 86400000)
    out[i] = '0'
    a = a + 3
  else
    return redis.error_reply('ringway sync: unknown item ' .. tostring(kind))
  end
end
return out
"#;

/// Quota counters live this long in Redis (a month's period, and then some).
const QUOTA_TTL_MS: u64 = 40 * 86_400_000;

/// Starts the sync thread for `fleet`. It runs for the life of the process.
pub fn spawn(fleet: Arc<Fleet>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ringway-cluster".into())
        .spawn(move || run(&fleet))?;
    Ok(())
}

/// One Redis connection and the config it was made for.
struct Link {
    config: Arc<ClusterConfig>,
    conn: redis::Connection,
}

fn run(fleet: &Fleet) {
    *fleet.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::thread::current());
    let script = redis::Script::new(SCRIPT);
    let id = instance_id();
    let mut link: Option<Link> = None;
    let mut first = true;
    loop {
        let config = fleet.config();
        if !first && !fleet.wanted.swap(false, Ordering::AcqRel) {
            std::thread::park_timeout(config.interval);
            fleet.wanted.store(false, Ordering::Release);
        }
        first = false;
        if link.as_ref().is_some_and(|l| l.config != config) {
            link = None;
        }
        if link.is_none() {
            match connect(&config) {
                Ok(conn) => link = Some(Link { config, conn }),
                Err(e) => {
                    fleet.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    went_down(fleet, &fleet.config(), &e);
                    continue;
                }
            }
        }
        let Some(l) = link.as_mut() else { continue };
        match sync_once(fleet, &script, &id, l) {
            Ok(()) => {
                fleet.stats.syncs.fetch_add(1, Ordering::Relaxed);
                if !fleet.up.swap(true, Ordering::AcqRel) {
                    info!(
                        "cluster: Redis at {} is reachable; limits are fleet-wide",
                        l.config.shown
                    );
                }
            }
            Err(e) => {
                fleet.stats.command_errors.fetch_add(1, Ordering::Relaxed);
                let config = l.config.clone();
                link = None;
                went_down(fleet, &config, &e);
            }
        }
    }
}

/// Marks Redis down; logs once per outage.
fn went_down(fleet: &Fleet, config: &ClusterConfig, e: &redis::RedisError) {
    if fleet.up.swap(false, Ordering::AcqRel) || fleet.stats.outages.load(Ordering::Relaxed) == 0 {
        fleet.stats.outages.fetch_add(1, Ordering::Relaxed);
        warn!(
            "cluster: Redis at {} unreachable ({e}); serving with on_redis_down = {:?} until it is back",
            config.shown, config.on_down
        );
    }
}

pub(crate) fn connect(config: &ClusterConfig) -> redis::RedisResult<redis::Connection> {
    let client = match (&config.sentinel, &config.ca) {
        (Some(s), _) => primary_of(s)?,
        (None, Some(ca)) => {
            let root = std::fs::read(ca).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "reading the CA bundle",
                    e.to_string(),
                ))
            })?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root),
            };
            redis::Client::build_with_tls(config.url.as_str(), certs)?
        }
        (None, None) => redis::Client::open(config.url.as_str())?,
    };
    let timeout = (config.interval * 4).max(Duration::from_millis(250));
    let conn = client.get_connection_with_timeout(timeout.max(Duration::from_secs(1)))?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Asks the Sentinels for the current primary (on every connect, so a
/// failover moves the sync to the new one).
fn primary_of(s: &super::config::Sentinel) -> redis::RedisResult<redis::Client> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let nodes = s
        .nodes
        .iter()
        .map(|(h, p)| redis::ConnectionAddr::Tcp(h.clone(), *p));
    let mut b = SentinelClientBuilder::new(nodes, &s.master, SentinelServerType::Master)?
        .set_client_to_redis_db(s.db);
    if let Some(u) = &s.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &s.password {
        b = b.set_client_to_redis_password(p);
    }
    b.build()?.get_client()
}

/// What one sync took from the local counters, to put back if it fails.
struct Taken {
    buckets: Vec<(Arc<FleetBucket>, u64)>,
    quotas: Vec<QuotaItem>,
}

/// One quota's part of a sync.
struct QuotaItem {
    q: Arc<FleetQuota>,
    window: u64,
    /// Requests admitted since the last sync (usage and the fleet's spent count).
    admitted: u64,
    /// Whether a `Q` item was sent, and the lease it asked for (0: none).
    sent: bool,
    want: u64,
    /// Unused grant handed back.
    give: u64,
}

fn sync_once(
    fleet: &Fleet,
    script: &redis::Script,
    id: &str,
    l: &mut Link,
) -> redis::RedisResult<()> {
    let prefix = &l.config.prefix;
    let mut inv = script.prepare_invoke();
    let horizon_us = (l.config.interval * 3)
        .max(Duration::from_secs(3))
        .as_micros() as u64;
    inv.key(format!("{prefix}instances"))
        .arg("I")
        .arg(id)
        .arg(horizon_us);
    let mut taken = Taken {
        buckets: Vec::new(),
        quotas: Vec::new(),
    };
    for b in fleet.live_buckets() {
        let n = b.pending.swap(0, Ordering::AcqRel);
        inv.key(format!("{prefix}bucket:{}", b.id))
            .arg("B")
            .arg(n)
            .arg(format!("{:.3}", b.rate.interval() as f64 / 1000.0))
            .arg(format!("{:.3}", b.rate.tolerance() as f64 / 1000.0));
        taken.buckets.push((b, n));
    }
    let today = super::usage::day_name((unix_now() / 86_400) as i64);
    let hold_ms = hold(l.config.interval).as_millis() as u64;
    for q in fleet.live_quotas() {
        let window = q.window.load(Ordering::Relaxed);
        let admitted = q.admitted.swap(0, Ordering::AcqRel);
        let want = lease_wanted(&q, window, admitted, fleet.instances()).unwrap_or(0);
        let give = q.returning(window);
        let holds = window != u64::MAX && q.granted_in(window) > q.ledger.used(window);
        let sent = want > 0 || give > 0 || admitted > 0 || holds;
        if sent {
            inv.key(format!("{prefix}quota:{}:{window}", q.id))
                .arg("Q")
                .arg(want)
                .arg(q.limit)
                .arg(QUOTA_TTL_MS)
                .arg(admitted)
                .arg(give)
                .arg(hold_ms);
        }
        if admitted > 0 {
            inv.key(format!("{prefix}usage:{}", q.id))
                .arg("U")
                .arg(&today)
                .arg(admitted);
        }
        taken.quotas.push(QuotaItem {
            q,
            window,
            admitted,
            sent,
            want,
            give,
        });
    }
    let reply: Result<Vec<String>, _> = inv.invoke(&mut l.conn);
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            put_back(&taken);
            return Err(e);
        }
    };
    if let Err(e) = apply(fleet, &taken, &reply) {
        put_back(&taken);
        return Err(e);
    }
    Ok(())
}

/// How much to lease for `q` now, if anything: when what is left of the
/// grant may not last until the next sync, about two intervals' demand, at
/// most an even share of half of what the fleet has left, at least one.
fn lease_wanted(q: &FleetQuota, window: u64, admitted: u64, instances: u64) -> Option<u64> {
    if window == u64::MAX {
        return None;
    }
    let granted = q.granted_in(window);
    let used_here = q.ledger.used(window).min(granted);
    let left_here = granted - used_here;
    if left_here > admitted.max(1) {
        return None;
    }
    let fleet_left = q.limit.saturating_sub(q.fleet_used.load(Ordering::Relaxed));
    let cap = (fleet_left / (2 * instances.max(1))).max(1);
    Some((admitted * 2).max(8).min(cap))
}

fn apply(fleet: &Fleet, taken: &Taken, reply: &[String]) -> redis::RedisResult<()> {
    let bad = || {
        redis::RedisError::from((
            redis::ErrorKind::Parse,
            "unexpected reply from the sync script",
        ))
    };
    let mut items = reply.iter();
    let instances: u64 = items.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let mut ahead = Vec::with_capacity(taken.buckets.len());
    for _ in &taken.buckets {
        let us: f64 = items.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        ahead.push((us.max(0.0) * 1000.0) as u64);
    }
    let mut grants = Vec::new();
    for item in &taken.quotas {
        let grant = if item.sent {
            let s = items.next().ok_or_else(bad)?;
            let mut n = s.split(':').map(|n| n.parse::<u64>().map_err(|_| bad()));
            let mut next = || n.next().ok_or_else(bad)?;
            Some(QuotaReply {
                grant: next()?,
                used: next()?,
                spent: next()?,
                flag: next()? == 1,
            })
        } else {
            None
        };
        if item.admitted > 0 {
            items.next().ok_or_else(bad)?;
        }
        grants.push(grant);
    }
    // Parsed whole: now publish.
    fleet.set_instances(instances);
    let now = crate::limit::now();
    for ((b, _), ahead) in taken.buckets.iter().zip(ahead) {
        b.catch_up(now, ahead);
    }
    let hold = hold(fleet.config().interval);
    for (item, reply) in taken.quotas.iter().zip(grants) {
        if let Some(r) = reply {
            item.q.returned(item.give);
            item.q.fleet_spent.store(r.spent, Ordering::Relaxed);
            item.q.fleet_used.store(r.used, Ordering::Relaxed);
            item.q.add_grant(item.window, r.grant);
            if item.want == 0 && r.flag && item.q.hand_back(item.window, item.admitted) {
                // Another instance is short: hand it back at once.
                fleet.wanted.store(true, Ordering::Release);
            }
            item.q.after_sync(&r, item.want > r.grant, now, hold);
        }
    }
    Ok(())
}

/// One quota's answer: what was granted now, and the fleet's granted and
/// spent counts for the period; whether the reclaim flag is up.
pub(super) struct QuotaReply {
    pub grant: u64,
    pub used: u64,
    pub spent: u64,
    pub flag: bool,
}

/// How long a short instance holds requests while a reclaim runs: ten
/// intervals, between 250 and 450 ms (a request waits at most about 500 ms
/// in all, see `proxy::policies`). A reclaim usually ends much sooner: when
/// the grant arrives, or when a sync shows the fleet has spent everything.
fn hold(interval: Duration) -> Duration {
    (interval * 10).clamp(Duration::from_millis(250), Duration::from_millis(450))
}

fn put_back(taken: &Taken) {
    for (b, n) in &taken.buckets {
        b.pending.fetch_add(*n, Ordering::Relaxed);
    }
    for item in &taken.quotas {
        item.q.admitted.fetch_add(item.admitted, Ordering::Relaxed);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random id for this process (its instance in the fleet's heartbeat set).
fn instance_id() -> String {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one((std::process::id(), SystemTime::now()));
    format!("{}-{r:016x}", std::process::id())
}
