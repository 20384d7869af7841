//! `GET /usage?key=NAME&from=YYYY-MM-DD&to=YYYY-MM-DD` and `ringway usage`:
//! one API key's admitted requests per UTC day and what is left of its
//! quota, as API Gateway's GetUsage reports them. In cluster mode the
//! numbers come from Redis (the fleet's), otherwise from this process.

use crate::cluster::usage::{Book, Days, Report, from_redis};
use crate::policy::api_key::{Period, period_of};
use crate::snapshot::Snapshot;

/// The report for key `name` over `days`; `unix` is now. Errors carry the
/// status to answer (404 for an unknown key, 503 when Redis cannot answer).
pub fn report(snap: &Snapshot, name: &str, days: Days, unix: u64) -> Result<Report, (u16, String)> {
    let keys = &snap.api_keys;
    let Some(key) = keys.keys.iter().find(|k| k.name == name) else {
        return Err((404, format!("no API key is named {name:?}")));
    };
    let plan = &keys.plans[key.plan];
    let quota = plan.quota.map(|q| (q, period_of(q.period, unix)));
    let (per_day, used, source) = match &snap.cluster {
        Some(cluster) => {
            let (per_day, used) =
                from_redis(cluster, name, days, quota.map(|(_, w)| w)).map_err(|e| {
                    (
                        503,
                        format!("Redis at {} did not answer: {e}", cluster.shown),
                    )
                })?;
            (per_day, used, "redis")
        }
        None => {
            let used = quota.map(|(_, w)| key.ledger.used(w));
            (Book::of(name).per_day(days), used, "local")
        }
    };
    Ok(Report {
        key: name.to_owned(),
        plan: plan.name.clone(),
        days: per_day,
        quota: quota.map(|(q, _)| {
            let period = match q.period {
                Period::Day => "day",
                Period::Week => "week",
                Period::Month => "month",
            };
            (q.limit, period, q.limit.saturating_sub(used.unwrap_or(0)))
        }),
        source,
    })
}

/// The value of `name` in a query string (no percent-decoding beyond `+`
/// and `%XX`, which key names and dates do not need but may carry).
pub fn query_value(query: &[u8], name: &str) -> Option<String> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        (k == name.as_bytes()).then(|| {
            let mut out = Vec::new();
            match ringway_router::percent::decode_into(v, &mut out) {
                Ok(()) => String::from_utf8_lossy(&out).replace('+', " "),
                Err(_) => String::from_utf8_lossy(v).into_owned(),
            }
        })
    })
}

/// Today, in days since the epoch, and now in seconds.
pub fn today() -> (i64, u64) {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ((unix / 86_400) as i64, unix)
}
