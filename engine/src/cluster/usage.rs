//! Usage per API key and UTC day, as API Gateway's GetUsage reports it:
//! for `GET /usage?key=NAME&from=YYYY-MM-DD&to=YYYY-MM-DD` on the admin
//! listener and `ringway usage -c FILE --key NAME`.
//!
//! In cluster mode the numbers come from Redis (every instance adds its
//! admitted requests to `<prefix>usage:<key>`, a hash of day → count, at each
//! sync); otherwise from this process's own book of days.

use super::ClusterConfig;
use crate::calendar;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// One API key's admitted requests per UTC day, in this process (for
/// `/usage` without a cluster). Today's count is one atomic word (day in
/// the high 24 bits, count in the low 40); past days move to a map when the
/// day changes (once a day).
#[derive(Debug, Default)]
pub struct Book {
    today: AtomicU64,
    past: Mutex<BTreeMap<i64, u64>>,
}

const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl Book {
    /// The book of the key named `name`: the same for the life of the process.
    pub fn of(name: &str) -> Arc<Book> {
        static ALL: OnceLock<Mutex<HashMap<String, Arc<Book>>>> = OnceLock::new();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.entry(name.to_owned()).or_default().clone()
    }

    /// Counts one admitted request on `day` (days since the epoch).
    #[inline]
    pub fn add(&self, day: i64) {
        let d = day as u64 & ((1 << (64 - COUNT_BITS)) - 1);
        let mut cur = self.today.load(Ordering::Relaxed);
        loop {
            let (cur_day, count) = (cur >> COUNT_BITS, cur & COUNT_MASK);
            let next = if cur_day == d {
                cur + 1
            } else if d < cur_day {
                // A request stamped just before midnight, counted just after.
                *self.past().entry(d as i64).or_default() += 1;
                return;
            } else {
                (d << COUNT_BITS) | 1
            };
            match self
                .today
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    if cur_day != d && count > 0 {
                        *self.past().entry(cur_day as i64).or_default() += count;
                    }
                    return;
                }
                Err(seen) => cur = seen,
            }
        }
    }

    fn past(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, u64>> {
        self.past.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The count of each day of `days`.
    pub fn per_day(&self, days: Days) -> Vec<(i64, u64)> {
        let now = self.today.load(Ordering::Acquire);
        let past = self.past();
        days.iter()
            .map(|d| {
                let mut n = past.get(&d).copied().unwrap_or(0);
                if (now >> COUNT_BITS) as i64 == d {
                    n += now & COUNT_MASK;
                }
                (d, n)
            })
            .collect()
    }
}

/// A day range, inclusive, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub from: i64,
    pub to: i64,
}

/// The longest range one report covers.
pub const MAX_DAYS: i64 = 366;

impl Days {
    /// Parses `from` / `to` (`YYYY-MM-DD`); `to` defaults to `today`, `from`
    /// to six days before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: i64) -> Result<Days, String> {
        let to = match to {
            Some(t) => {
                parse_day(t).ok_or_else(|| format!("`to`: {t:?} is not a date (YYYY-MM-DD)"))?
            }
            None => today,
        };
        let from = match from {
            Some(f) => {
                parse_day(f).ok_or_else(|| format!("`from`: {f:?} is not a date (YYYY-MM-DD)"))?
            }
            None => to - 6,
        };
        if from > to {
            return Err("`from` is after `to`".into());
        }
        if to - from >= MAX_DAYS {
            return Err(format!("at most {MAX_DAYS} days per report"));
        }
        Ok(Days { from, to })
    }

    pub fn iter(self) -> impl Iterator<Item = i64> {
        self.from..=self.to
    }
}

/// `YYYY-MM-DD` → days since the epoch.
pub fn parse_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days = calendar::days_from_civil(i64::from(y), m, d);
    // Out-of-range months and days do not survive the round trip.
    (day_name(days) == s).then_some(days)
}

/// Days since the epoch → `YYYY-MM-DD`.
pub fn day_name(days: i64) -> String {
    let (y, m, d) = calendar::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// One key's usage report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub key: String,
    pub plan: String,
    pub days: Vec<(i64, u64)>,
    /// The quota (limit and period name) and what is left of it now.
    pub quota: Option<(u64, &'static str, u64)>,
    /// Where the numbers come from: `"redis"` or `"local"`.
    pub source: &'static str,
}

impl Report {
    pub fn to_json(&self) -> String {
        let days: Vec<_> = self
            .days
            .iter()
            .map(|(d, n)| serde_json::json!({ "date": day_name(*d), "used": n }))
            .collect();
        let quota = self.quota.map(|(limit, period, remaining)| {
            serde_json::json!({ "limit": limit, "period": period, "remaining": remaining })
        });
        let doc = serde_json::json!({
            "key": self.key,
            "plan": self.plan,
            "source": self.source,
            "days": days,
            "quota": quota,
        });
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "key {} (plan {}), from {}\n",
            self.key, self.plan, self.source
        );
        for (d, n) in &self.days {
            let _ = writeln!(s, "{}  {n}", day_name(*d));
        }
        match self.quota {
            Some((limit, period, remaining)) => {
                let _ = writeln!(s, "quota: {remaining} of {limit} left this {period}");
            }
            None => s.push_str("quota: none\n"),
        }
        s
    }
}

/// Admitted requests per day, and the quota used in the current period (if asked).
pub type DaysAndUsed = (Vec<(i64, u64)>, Option<u64>);

/// Per-day counts of `key` from Redis, and (for a quota counted in period
/// `window`) how much of the fleet's quota is used.
pub fn from_redis(
    config: &ClusterConfig,
    key: &str,
    days: Days,
    window: Option<u64>,
) -> redis::RedisResult<DaysAndUsed> {
    let mut conn = super::sync::connect(config)?;
    let names: Vec<String> = days.iter().map(day_name).collect();
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(format!("{}usage:{key}", config.prefix)).arg(&names);
    let counts: Vec<Option<u64>> = cmd.query(&mut conn)?;
    let used = match window {
        Some(w) => {
            let n: Option<u64> = redis::cmd("GET")
                .arg(format!("{}quota:{key}:{w}", config.prefix))
                .query(&mut conn)?;
            Some(n.unwrap_or(0))
        }
        None => None,
    };
    let per_day = days
        .iter()
        .zip(counts)
        .map(|(d, n)| (d, n.unwrap_or(0)))
        .collect();
    Ok((per_day, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_book_keeps_days_apart() {
        let b = Book::default();
        for _ in 0..3 {
            b.add(100);
        }
        b.add(101);
        b.add(100);
        b.add(101);
        let r = b.per_day(Days { from: 99, to: 102 });
        assert_eq!(r, vec![(99, 0), (100, 4), (101, 2), (102, 0)]);
    }

    #[test]
    fn dates_and_ranges() {
        let d = parse_day("2026-12-06").unwrap();
        assert_eq!(day_name(d), "2026-12-06");
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "26-12-06",
            "2026/12/06",
            "2026-12-6",
            "",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        let r = Days::parse(Some("2026-12-01"), Some("2026-12-06"), 0).unwrap();
        assert_eq!(r.iter().count(), 6);
        assert_eq!(
            Days::parse(None, None, d).unwrap(),
            Days { from: d - 6, to: d }
        );
        assert!(Days::parse(Some("2026-12-07"), Some("2026-12-06"), 0).is_err());
        assert!(Days::parse(Some("2020-01-01"), Some("2026-12-06"), 0).is_err());
    }
}
