//! When schedules fire: cron expressions (with seconds and a time zone), one-shot instants and
//! fixed intervals, shared by the gateway (validation, previews) and the scheduler.

pub mod cron;
pub mod store;

use crate::wire::schedule::{Schedule, Timing};
use chrono::{DateTime, Utc};

/// A schedule's timing, checked and ready to compute fire times.
#[derive(Debug, Clone)]
pub enum Plan {
    Cron(cron::Cron, chrono_tz::Tz),
    Once(DateTime<Utc>),
    Interval {
        every: chrono::Duration,
        start: DateTime<Utc>,
    },
}

/// The shortest interval a schedule may have.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Plan {
    /// Checks a timing; `active_since` anchors an interval without a start.
    pub fn new(timing: &Timing, active_since: DateTime<Utc>) -> Result<Self, String> {
        match timing {
            Timing::Cron { cron, time_zone } => Ok(Plan::Cron(
                cron::Cron::parse(cron)?,
                cron::parse_tz(time_zone)?,
            )),
            Timing::Once { at } => Ok(Plan::Once(*at)),
            Timing::Interval { every, start } => {
                if *every < MIN_INTERVAL {
                    return Err(format!(
                        "the interval must be at least {}s",
                        MIN_INTERVAL.as_secs()
                    ));
                }
                let every = chrono::Duration::from_std(*every)
                    .map_err(|_| "the interval is too long".to_string())?;
                Ok(Plan::Interval {
                    every,
                    start: start.unwrap_or(active_since),
                })
            }
        }
    }

    /// The plan of a stored schedule.
    pub fn of(s: &Schedule) -> Result<Self, String> {
        Self::new(&s.timing, s.active_since)
    }

    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Plan::Cron(c, tz) => c.next_after(after, *tz),
            Plan::Once(at) => (*at > after).then_some(*at),
            Plan::Interval { every, start } => {
                if after < *start {
                    return Some(*start);
                }
                let step = every.num_milliseconds().max(1);
                let n = (after - *start).num_milliseconds() / step + 1;
                Some(*start + chrono::Duration::milliseconds(n * step))
            }
        }
    }

    /// Fires in `(after, until]`, at most `limit` of them, and whether there were more.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, bool) {
        let mut out = Vec::new();
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > until {
                return (out, false);
            }
            if out.len() == limit {
                return (out, true);
            }
            out.push(next);
            t = next;
        }
        (out, false)
    }

    /// The next `n` fires after `after` (previews).
    pub fn preview(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn intervals_and_one_shots_fire_where_expected() {
        let p = Plan::new(
            &Timing::Interval {
                every: Duration::from_secs(10),
                start: None,
            },
            t("2026-01-01T00:00:00Z"),
        )
        .unwrap();
        let (f, more) = p.fires_between(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:35Z"), 10);
        assert_eq!(
            f,
            vec![
                t("2026-01-01T00:00:10Z"),
                t("2026-01-01T00:00:20Z"),
                t("2026-01-01T00:00:30Z")
            ]
        );
        assert!(!more);
        let (f, more) = p.fires_between(t("2026-01-01T00:00:00Z"), t("2026-01-01T01:00:00Z"), 2);
        assert_eq!(f.len(), 2);
        assert!(more);
        let once = Plan::new(
            &Timing::Once {
                at: t("2026-05-01T12:00:00Z"),
            },
            t("2026-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            once.preview(t("2026-01-01T00:00:00Z"), 3),
            vec![t("2026-05-01T12:00:00Z")]
        );
        assert!(
            Plan::new(
                &Timing::Interval {
                    every: Duration::from_millis(10),
                    start: None
                },
                t("2026-01-01T00:00:00Z")
            )
            .unwrap_err()
            .contains("at least")
        );
    }
}
