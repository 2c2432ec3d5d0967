//! Reading a schedule body ([`ScheduleInput`]) into a schedule: its timing and target merged
//! over what it had, the policies, and the checks a body must pass. Pure: no NATS, a clock
//! passed in, so every rule is tested here.

use chrono::{DateTime, Utc};
use taskwire_core::catalog::check_command_name;
use taskwire_core::schedule::Plan;
use taskwire_core::wire::api::{ScheduleInput, SubmitRequest};
use taskwire_core::wire::{Schedule, ScheduleTarget, Timing};

/// The largest jitter a schedule may ask for.
pub const MAX_JITTER: std::time::Duration = std::time::Duration::from_secs(3600);

const SAY_WHEN: &str = "say when it fires: kind 'cron' (with cron and time_zone), 'once' (with at) or 'interval' (with every)";

/// The timing `input` asks for, merged over `old`; `None` when it does not touch the timing.
pub fn timing(input: &ScheduleInput, old: Option<&Timing>) -> Result<Option<Timing>, String> {
    let touches = input.kind.is_some()
        || input.cron.is_some()
        || input.time_zone.is_some()
        || input.at.is_some()
        || input.every.is_some()
        || input.start.is_some();
    if !touches {
        return Ok(None);
    }
    let old_kind = match old {
        Some(Timing::Cron { .. }) => Some("cron"),
        Some(Timing::Once { .. }) => Some("once"),
        Some(Timing::Interval { .. }) => Some("interval"),
        None => None,
    };
    let kind = input.kind.as_deref().or(old_kind).ok_or(SAY_WHEN)?;
    let same = old_kind == Some(kind);
    Ok(Some(match kind {
        "cron" => {
            let (old_cron, old_tz) = match (same, old) {
                (true, Some(Timing::Cron { cron, time_zone })) => {
                    (Some(cron.clone()), Some(time_zone.clone()))
                }
                _ => (None, None),
            };
            Timing::Cron {
                cron: input.cron.clone().or(old_cron).ok_or("a cron schedule needs 'cron', e.g. \"0 30 2 * * *\" (second minute hour day month weekday)")?,
                time_zone: input.time_zone.clone().or(old_tz).unwrap_or_else(|| "UTC".into()),
            }
        }
        "once" => {
            let old_at = match (same, old) {
                (true, Some(Timing::Once { at })) => Some(*at),
                _ => None,
            };
            Timing::Once {
                at: input
                    .at
                    .or(old_at)
                    .ok_or("a one-shot schedule needs 'at', an RFC 3339 instant")?,
            }
        }
        "interval" => {
            let (old_every, old_start) = match (same, old) {
                (true, Some(Timing::Interval { every, start })) => (Some(*every), *start),
                _ => (None, None),
            };
            let every = match &input.every {
                Some(e) => {
                    taskwire_core::units::parse_duration(e).map_err(|e| format!("every: {e}"))?
                }
                None => old_every
                    .ok_or("an interval schedule needs 'every', e.g. \"90s\" or \"15m\"")?,
            };
            Timing::Interval {
                every,
                start: input.start.or(old_start),
            }
        }
        other => {
            return Err(format!(
                "kind '{other}' is not known; use cron, once or interval"
            ));
        }
    }))
}

/// The target `input` asks for, merged over `old`.
pub fn target(input: &ScheduleInput, old: &ScheduleTarget) -> Result<ScheduleTarget, String> {
    let touches = input.channel.is_some()
        || input.instance.is_some()
        || input.all_instances.is_some()
        || input.labels.is_some();
    if !touches {
        return Ok(old.clone());
    }
    checked(ScheduleTarget {
        channel: input.channel.clone(),
        instance: input.instance,
        all_instances: input.all_instances.unwrap_or(false),
        labels: input.labels.clone().unwrap_or_default(),
    })
}

/// The target of a submit's fields (a delayed job's schedule).
pub fn target_of(req: &SubmitRequest) -> Result<ScheduleTarget, String> {
    checked(ScheduleTarget {
        channel: req.channel.clone(),
        instance: req.instance,
        all_instances: req.all_instances,
        labels: req.labels.clone(),
    })
}

fn checked(t: ScheduleTarget) -> Result<ScheduleTarget, String> {
    let given = [
        t.channel.is_some(),
        t.instance.is_some(),
        t.all_instances,
        !t.labels.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given > 1 {
        return Err("give at most one target: channel, instance, all_instances or labels".into());
    }
    if let Some(c) = &t.channel {
        taskwire_core::names::check_token("channel", c).map_err(|e| e.to_string())?;
    }
    Ok(t)
}

/// Applies `input` to `s` (a new schedule when `creating`, else a copy of a stored one) at
/// `now`: a new timing or a resume restarts it from now. The owner's right to run the
/// command and the parameters are checked by the caller.
pub fn apply(
    s: &mut Schedule,
    input: &ScheduleInput,
    creating: bool,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if let Some(n) = &input.name {
        if n.chars().count() > 100 || n.chars().any(char::is_control) {
            return Err("name: at most 100 characters, no control characters".into());
        }
        s.name = n.clone();
    }
    if let Some(c) = &input.command {
        check_command_name(c)?;
        s.command = c.clone();
    }
    if let Some(p) = &input.params {
        s.params = p.clone();
    }
    s.target = target(input, &s.target)?;
    if let Some(t) = timing(input, if creating { None } else { Some(&s.timing) })? {
        s.timing = t;
        s.active_since = now;
    } else if creating {
        return Err(SAY_WHEN.into());
    }
    if let Some(e) = input.enabled {
        if e && !s.enabled {
            s.active_since = now;
        }
        s.enabled = e;
    }
    if let Some(o) = input.overlap {
        s.overlap = o;
    }
    if let Some(m) = input.misfire {
        s.misfire = m;
    }
    if let Some(j) = &input.jitter {
        let j = taskwire_core::units::parse_duration(j).map_err(|e| format!("jitter: {e}"))?;
        if j > MAX_JITTER {
            return Err("jitter: at most 1h".into());
        }
        s.jitter = (!j.is_zero()).then_some(j);
    }
    Plan::of(s)?;
    if creating
        && let Timing::Once { at } = &s.timing
        && *at <= now
    {
        return Err(format!(
            "'at' ({at}) has already passed; give a future instant"
        ));
    }
    s.updated_at = now;
    Ok(())
}

/// A timing in words, for the audit log.
pub fn describe(t: &Timing) -> String {
    match t {
        Timing::Cron { cron, time_zone } => format!("cron '{cron}' in {time_zone}"),
        Timing::Once { at } => format!("once at {at}"),
        Timing::Interval { every, .. } => {
            format!("every {}", taskwire_core::units::format_duration(*every))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;
    use taskwire_core::wire::{Misfire, Overlap};
    use uuid::Uuid;

    fn now() -> DateTime<Utc> {
        "2026-01-02T03:04:05Z".parse().unwrap()
    }

    fn blank() -> Schedule {
        Schedule {
            id: Uuid::from_u128(1),
            name: String::new(),
            command: String::new(),
            params: BTreeMap::new(),
            target: ScheduleTarget::default(),
            timing: Timing::Once { at: now() },
            owner: "alice".into(),
            owner_roles: vec![],
            enabled: true,
            overlap: Overlap::default(),
            misfire: Misfire::default(),
            jitter: None,
            active_since: now(),
            job_id: None,
            created_at: now(),
            updated_at: now(),
        }
    }

    fn input(v: serde_json::Value) -> ScheduleInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_change_merges_over_the_old_timing_and_restarts_it_from_now() {
        let mut s = blank();
        apply(
            &mut s,
            &input(serde_json::json!({"command": "hello", "kind": "cron", "cron": "0 0 * * * *", "time_zone": "Europe/Berlin"})),
            true,
            now(),
        )
        .unwrap();
        let later = now() + chrono::Duration::hours(1);
        apply(
            &mut s,
            &input(serde_json::json!({"cron": "0 30 * * * *"})),
            false,
            later,
        )
        .unwrap();
        assert_eq!(
            s.timing,
            Timing::Cron {
                cron: "0 30 * * * *".into(),
                time_zone: "Europe/Berlin".into()
            }
        );
        assert_eq!(s.active_since, later);
        // A pause and a resume: the resume restarts from its moment.
        let resumed = later + chrono::Duration::hours(1);
        apply(
            &mut s,
            &input(serde_json::json!({"enabled": false})),
            false,
            resumed,
        )
        .unwrap();
        assert!(!s.enabled);
        apply(
            &mut s,
            &input(serde_json::json!({"enabled": true})),
            false,
            resumed,
        )
        .unwrap();
        assert_eq!(s.active_since, resumed);
    }

    #[test]
    fn bodies_that_cannot_be_a_schedule_say_why() {
        let refuse =
            |v: serde_json::Value| apply(&mut blank(), &input(v), true, now()).unwrap_err();
        assert!(refuse(serde_json::json!({"command": "hello"})).contains("say when it fires"));
        assert!(
            refuse(serde_json::json!({"command": "hello", "kind": "weekly"})).contains("not known")
        );
        assert!(refuse(serde_json::json!({"command": "hello", "kind": "once", "at": "2020-01-01T00:00:00Z"})).contains("already passed"));
        assert!(refuse(serde_json::json!({"command": "hello", "kind": "interval", "every": "5m", "jitter": "2h"})).contains("at most 1h"));
        assert!(refuse(serde_json::json!({"command": "hello", "kind": "interval", "every": "5m", "channel": "a", "all_instances": true})).contains("at most one target"));
        assert!(
            refuse(serde_json::json!({"command": "bad name", "kind": "interval", "every": "5m"}))
                .contains("command")
        );
        let mut s = blank();
        apply(&mut s, &input(serde_json::json!({"command": "hello", "kind": "interval", "every": "90s", "jitter": "0s"})), true, now()).unwrap();
        assert_eq!(
            s.timing,
            Timing::Interval {
                every: Duration::from_secs(90),
                start: None
            }
        );
        assert_eq!(s.jitter, None);
        assert_eq!(describe(&s.timing), "every 90s");
    }

    #[test]
    fn a_delayed_job_takes_the_submit_target() {
        let req = SubmitRequest {
            command: "hello".into(),
            channel: Some("reports".into()),
            ..Default::default()
        };
        assert_eq!(target_of(&req).unwrap().channel.as_deref(), Some("reports"));
        let bad = SubmitRequest {
            channel: Some("no spaces".into()),
            ..req
        };
        assert!(target_of(&bad).is_err());
    }
}
