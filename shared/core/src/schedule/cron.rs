//! Cron expressions with seconds, evaluated in a time zone, correct across daylight-saving
//! changes.
//!
//! Six fields `second minute hour day-of-month month day-of-week` (five fields mean second 0),
//! each `*`, a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma list of these;
//! months and weekdays also by name (`JAN`, `MON`), Sunday as 0 or 7; `@yearly`, `@monthly`,
//! `@weekly`, `@daily`, `@hourly`. When both day fields are restricted a day matches either
//! (as in Vixie cron).
//!
//! Daylight saving (the behaviour of cronie, written down in docs/architecture.md):
//! - a wall-clock time that happens twice (clocks go back) fires once, at its first
//!   occurrence, unless the hour field is `*`: an hourly-or-finer schedule follows real time
//!   and fires in both passes;
//! - a wall-clock time that does not happen (clocks go forward) fires once, at the instant
//!   the clocks jump, unless the hour field is `*` (real time simply goes on).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: u64,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_star: bool,
    weekdays_star: bool,
    hours_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field(
    text: &str,
    what: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    name_base: u32,
) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let value = |s: &str| -> Result<u32, String> {
        let up = s.to_ascii_uppercase();
        if let Some(i) = names.iter().position(|n| *n == up) {
            return Ok(i as u32 + name_base);
        }
        let v: u32 = s.parse().map_err(|_| {
            format!(
                "{what} field: '{s}' is not a number{}",
                if names.is_empty() {
                    String::new()
                } else {
                    " or a name".into()
                }
            )
        })?;
        if v < lo || v > hi {
            return Err(format!("{what} field: {v} is outside {lo}-{hi}"));
        }
        Ok(v)
    };
    for part in text.split(',') {
        if part.is_empty() {
            return Err(format!("{what} field: empty item in '{text}'"));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 =
                    s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("{what} field: step '{s}' must be a positive number")
                    })?;
                (r, s)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            (a, if step > 1 { hi } else { a })
        };
        if a > b {
            return Err(format!("{what} field: range {a}-{b} runs backwards"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text == "*" || text == "?"))
}

impl Cron {
    /// Parses an expression; the error says which field is wrong and why.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let expr = expr.trim();
        let expanded = match expr {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * SUN",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            other => other,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        let parts: Vec<&str> = match parts.len() {
            6 => parts,
            5 => std::iter::once("0").chain(parts).collect(),
            n => {
                return Err(format!(
                    "a cron expression has 6 fields (second minute hour day month weekday) or 5 (without seconds); '{expr}' has {n}"
                ));
            }
        };
        let q = |s: &str| {
            if s == "?" {
                "*".to_string()
            } else {
                s.to_string()
            }
        };
        let (seconds, _) = field(&q(parts[0]), "second", 0, 59, &[], 0)?;
        let (minutes, _) = field(&q(parts[1]), "minute", 0, 59, &[], 0)?;
        let (hours, hours_star) = field(&q(parts[2]), "hour", 0, 23, &[], 0)?;
        let (days, days_star) = field(&q(parts[3]), "day-of-month", 1, 31, &[], 0)?;
        let (months, _) = field(&q(parts[4]), "month", 1, 12, &MONTHS, 1)?;
        let (mut weekdays, weekdays_star) = field(&q(parts[5]), "day-of-week", 0, 7, &WEEKDAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Self {
            seconds,
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_star,
            weekdays_star,
            hours_star,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().num_days_from_sunday()) != 0;
        match (self.days_star, self.weekdays_star) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first fire strictly after `after`, evaluated in `tz`; `None` when the expression
    /// can never match (such as 30 February) within the next eight years.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local_after = after.with_timezone(&tz).naive_local();
        // Start a day early: a time that happens twice may still lie ahead in real time.
        let first_day = local_after.date() - Duration::days(1);
        for offset in 0..(366 * 8) {
            let day = first_day + Duration::days(offset);
            if !self.day_matches(day) {
                continue;
            }
            if let Some(t) = self.first_in_day(day, after, local_after, tz) {
                return Some(t);
            }
        }
        None
    }

    fn first_in_day(
        &self,
        day: NaiveDate,
        after: DateTime<Utc>,
        local_after: NaiveDateTime,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        // Without an offset change nearby, wall-clock order is real-time order: skip what is
        // not after `after` and take the first match.
        let offset = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|n| tz.offset_from_utc_datetime(&n).fix())
        };
        let stable = offset(day - Duration::days(1)) == offset(day + Duration::days(2));
        let mut best: Option<DateTime<Utc>> = None;
        for h in (0..24).filter(|h| self.hours & (1 << h) != 0) {
            let hour_start = day.and_hms_opt(h, 0, 0)?;
            if stable && hour_start + Duration::hours(1) <= local_after {
                continue;
            }
            // Whole hours more than three hours before `after` (in wall time) cannot be next.
            if hour_start + Duration::hours(4) < local_after {
                continue;
            }
            // Candidates come in wall-clock order; real time can differ by at most a few hours.
            if let Some(b) = best
                && hour_start > b.with_timezone(&tz).naive_local() + Duration::hours(3)
            {
                break;
            }
            for m in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                if stable && day.and_hms_opt(h, m, 59)? < local_after {
                    continue;
                }
                for s in (0..60).filter(|s| self.seconds & (1 << s) != 0) {
                    let wall = day.and_hms_opt(h, m, s)?;
                    if stable && wall <= local_after {
                        continue;
                    }
                    for t in self.instants(wall, tz) {
                        if t > after && best.is_none_or(|b| t < b) {
                            best = Some(t);
                        }
                    }
                    if let Some(b) = best
                        && (stable
                            || wall > b.with_timezone(&tz).naive_local() + Duration::hours(3))
                    {
                        return best;
                    }
                }
            }
        }
        best
    }

    /// The instants a wall-clock time stands for under the DST rules above.
    fn instants(&self, wall: NaiveDateTime, tz: Tz) -> Vec<DateTime<Utc>> {
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(a, b) => {
                if self.hours_star {
                    vec![a.with_timezone(&Utc), b.with_timezone(&Utc)]
                } else {
                    vec![a.with_timezone(&Utc).min(b.with_timezone(&Utc))]
                }
            }
            LocalResult::None => {
                if self.hours_star {
                    return Vec::new();
                }
                // The clocks jumped over this time: fire when they land.
                let mut probe = wall;
                for _ in 0..(24 * 60) {
                    probe = (probe + Duration::minutes(1))
                        .with_second(0)
                        .unwrap_or(probe);
                    if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                        tz.from_local_datetime(&probe)
                    {
                        return vec![t.with_timezone(&Utc)];
                    }
                }
                Vec::new()
            }
        }
    }
}

/// Parses an IANA time-zone name (`Europe/Berlin`, `UTC`).
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("'{name}' is not a known time zone; use an IANA name such as UTC, Europe/Berlin or America/New_York")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn fires(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        let c = Cron::parse(expr).unwrap();
        let tz = parse_tz(tz).unwrap();
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = c.next_after(t, tz).unwrap();
            out.push(t.to_rfc3339());
        }
        out
    }

    #[test]
    fn plain_expressions_fire_where_expected() {
        assert_eq!(
            fires("*/20 * * * * *", "UTC", "2026-03-01T00:00:00Z", 3),
            [
                "2026-03-01T00:00:20+00:00",
                "2026-03-01T00:00:40+00:00",
                "2026-03-01T00:01:00+00:00"
            ]
        );
        assert_eq!(
            fires("0 30 9 * * MON-FRI", "UTC", "2026-11-20T10:00:00Z", 2),
            ["2026-11-23T09:30:00+00:00", "2026-11-24T09:30:00+00:00"]
        );
        assert_eq!(
            fires("@monthly", "UTC", "2026-01-31T00:00:00Z", 1),
            ["2026-02-01T00:00:00+00:00"]
        );
        assert_eq!(
            fires("0 0 12 29 FEB *", "UTC", "2026-01-01T00:00:00Z", 1),
            ["2028-02-29T12:00:00+00:00"]
        );
        // Five fields: second 0. Sunday as 7.
        assert_eq!(
            fires("15 10 * * 7", "UTC", "2026-11-22T00:00:00Z", 1),
            ["2026-11-22T10:15:00+00:00"]
        );
        assert!(
            Cron::parse("0 0 31 2 *")
                .unwrap()
                .next_after(utc("2026-01-01T00:00:00Z"), Tz::UTC)
                .is_none()
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let e = |x: &str| Cron::parse(x).unwrap_err();
        assert!(e("* * *").contains("6 fields"), "{}", e("* * *"));
        assert!(e("0 61 * * * *").contains("minute field: 61 is outside 0-59"));
        assert!(e("0 0 0 * FOO *").contains("month field"));
        assert!(e("*/0 * * * * *").contains("step"));
        assert!(e("0 0 5-1 * * *").contains("backwards"));
        assert!(parse_tz("Mars/Olympus").unwrap_err().contains("IANA"));
    }

    #[test]
    fn daily_times_survive_daylight_saving_changes() {
        // Europe/Berlin: 2026-03-29 02:00 -> 03:00 (CET -> CEST); 2026-10-25 03:00 -> 02:00.
        // 02:30 does not exist on 29 March: it fires when the clocks jump (01:00 UTC).
        assert_eq!(
            fires("0 30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3),
            [
                "2026-03-28T01:30:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-30T00:30:00+00:00"
            ]
        );
        // 02:30 happens twice on 25 October: it fires once, at the first.
        assert_eq!(
            fires("0 30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T00:30:00+00:00",
                "2026-10-26T01:30:00+00:00",
                "2026-10-27T01:30:00+00:00"
            ]
        );
        // 09:00 keeps its wall-clock time, so its UTC instant moves by the hour.
        assert_eq!(
            fires("0 0 9 * * *", "America/New_York", "2026-03-07T00:00:00Z", 2),
            ["2026-03-07T14:00:00+00:00", "2026-03-08T13:00:00+00:00"]
        );
    }

    #[test]
    fn hourly_schedules_follow_real_time_across_the_changes() {
        // Every 30 minutes in Berlin on the spring-forward night: no burst, no gap in real time.
        assert_eq!(
            fires("0 */30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 4),
            [
                "2026-03-29T00:30:00+00:00",
                "2026-03-29T01:00:00+00:00",
                "2026-03-29T01:30:00+00:00",
                "2026-03-29T02:00:00+00:00"
            ]
        );
        // ... and on the fall-back night the repeated hour fires in both passes.
        assert_eq!(
            fires("0 0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 4),
            [
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T01:00:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-25T03:00:00+00:00"
            ]
        );
    }
}
