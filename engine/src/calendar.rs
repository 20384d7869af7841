//! UTC calendar arithmetic on Unix time, proleptic Gregorian: the one place
//! that turns seconds into dates (access-log timestamps, API key quota
//! periods, the benchmark report's date) and dates back into days.
//!
//! The day conversions shift the epoch to 0000-03-01 so that a leap day is
//! the last day of its year, and count in 400-year eras of 146,097 days.

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// Days from 1970-01-01 back to 0000-03-01.
const EPOCH_SHIFT: i64 = 719_468;

/// Days in a 400-year era.
const ERA_DAYS: i64 = 146_097;

/// A UTC date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl DateTime {
    /// The date and time of `secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(secs: u64) -> DateTime {
        let (year, month, day) = civil_from_days((secs / DAY) as i64);
        let rem = (secs % DAY) as u32;
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
        }
    }

    /// The month's English three-letter abbreviation (`Jan`), as logs write it.
    pub fn month_abbrev(&self) -> &'static str {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        MONTHS[(self.month - 1) as usize]
    }
}

/// The date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(ERA_DAYS);
    let doe = z.rem_euclid(ERA_DAYS);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day count since 1970-01-01 of a date (`month` 1 to 12).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * ERA_DAYS + doe - EPOCH_SHIFT
}

/// Monday-based weeks since the week of 1970-01-01 (a Thursday: that week
/// began three days earlier).
pub fn week_of_day(days: u64) -> u64 {
    (days + 3) / 7
}

/// The first day (since 1970-01-01) of week `week` (see [`week_of_day`]);
/// week 0 begins before the epoch, so it saturates to day 0's week start.
pub fn first_day_of_week(week: u64) -> u64 {
    (week * 7).saturating_sub(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn date_times() {
        let t = |s| DateTime::from_unix(s);
        assert_eq!(
            t(0),
            DateTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        let leap = t(951_782_400);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        let late = t(1_795_741_261);
        assert_eq!(
            (
                late.year,
                late.month,
                late.day,
                late.hour,
                late.minute,
                late.second
            ),
            (2026, 11, 27, 1, 1, 1)
        );
        assert_eq!(late.month_abbrev(), "Nov");
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-30 is a Monday; the Sunday before belongs to the week before.
        let monday = days_from_civil(2026, 11, 30) as u64;
        assert_eq!(week_of_day(monday), week_of_day(monday + 6));
        assert_eq!(week_of_day(monday - 1) + 1, week_of_day(monday));
        assert_eq!(first_day_of_week(week_of_day(monday + 4)), monday);
    }
}
