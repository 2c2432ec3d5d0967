//! Where a submitted job may run: a pure decision from the request's target fields and the
//! registry, so it is tested without NATS.

use crate::error::{ApiError, ErrorCode};
use taskwire_core::wire::api::SubmitRequest;
use taskwire_core::wire::{InstanceInfo, InstanceStatus, Target};

/// The targets of `req`: one channel, or one or more instances (a fan-out), among the
/// serving instances that offer the command. A refusal says what is offered instead.
pub fn choose(req: &SubmitRequest, instances: &[InstanceInfo]) -> Result<Vec<Target>, ApiError> {
    let given = [
        req.channel.is_some(),
        req.instance.is_some(),
        req.all_instances,
        !req.labels.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given > 1 {
        return Err(ApiError::invalid(
            "give at most one target: channel, instance, all_instances or labels",
        ));
    }
    let none = |msg: String| ApiError::new(ErrorCode::NoInstance, msg);
    let offering: Vec<&InstanceInfo> = instances
        .iter()
        .filter(|i| i.status == InstanceStatus::Serving)
        .filter(|i| i.catalog.iter().any(|c| c.name == req.command))
        .collect();
    if offering.is_empty() {
        let mut names: Vec<&str> = instances
            .iter()
            .flat_map(|i| i.catalog.iter().map(|c| c.name.as_str()))
            .collect();
        names.sort();
        names.dedup();
        return Err(none(format!(
            "no serving instance offers command '{}'{}",
            req.command,
            if names.is_empty() {
                "; no instance is registered at all".to_string()
            } else {
                format!("; offered commands: {}", names.join(", "))
            }
        )));
    }
    if let Some(g) = req.instance {
        return if offering.iter().any(|i| i.guid == g) {
            Ok(vec![Target::Instance(g)])
        } else {
            Err(none(format!(
                "instance {g} is not serving or does not offer '{}'",
                req.command
            )))
        };
    }
    if req.all_instances {
        return Ok(offering.iter().map(|i| Target::Instance(i.guid)).collect());
    }
    if !req.labels.is_empty() {
        let matching: Vec<Target> = offering
            .iter()
            .filter(|i| req.labels.iter().all(|(k, v)| i.labels.get(k) == Some(v)))
            .map(|i| Target::Instance(i.guid))
            .collect();
        return if matching.is_empty() {
            Err(none(format!(
                "no serving instance offering '{}' has all of the labels given",
                req.command
            )))
        } else {
            Ok(matching)
        };
    }
    let channel = req.channel.clone().unwrap_or_else(|| "default".into());
    let runs_there = offering.iter().any(|i| {
        i.catalog
            .iter()
            .any(|c| c.name == req.command && c.channels.contains(&channel))
    });
    if runs_there {
        Ok(vec![Target::Channel(channel)])
    } else {
        Err(none(format!(
            "no serving instance runs '{}' on channel '{channel}'",
            req.command
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use taskwire_core::catalog::CommandInfo;
    use taskwire_core::wire::{Slots, TreeMode};
    use uuid::Uuid;

    fn instance(n: u128, status: InstanceStatus, site: &str) -> InstanceInfo {
        let at = "2026-01-02T03:04:05Z".parse().unwrap();
        InstanceInfo {
            guid: Uuid::from_u128(n),
            hostname: format!("host-{n}"),
            labels: BTreeMap::from([("site".into(), site.into())]),
            channels: vec!["default".into()],
            slots: Slots { used: 0, total: 5 },
            channel_slots: BTreeMap::new(),
            jobs: vec![],
            executor_rss_bytes: None,
            version: "0".into(),
            status,
            tree: TreeMode::ProcessGroup,
            catalog: vec![CommandInfo {
                name: "hello".into(),
                description: String::new(),
                params: vec![],
                channels: vec!["default".into()],
                timeout_secs: None,
            }],
            started_at: at,
            heartbeat_at: at,
        }
    }

    fn req() -> SubmitRequest {
        SubmitRequest {
            command: "hello".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_channel_an_instance_a_fan_out_or_a_refusal_that_names_what_is_offered() {
        let fleet = [
            instance(1, InstanceStatus::Serving, "a"),
            instance(2, InstanceStatus::Serving, "b"),
            instance(3, InstanceStatus::Draining, "a"),
        ];
        assert_eq!(
            choose(&req(), &fleet).unwrap(),
            [Target::Channel("default".into())]
        );
        let all = SubmitRequest {
            all_instances: true,
            ..req()
        };
        assert_eq!(
            choose(&all, &fleet).unwrap(),
            [
                Target::Instance(Uuid::from_u128(1)),
                Target::Instance(Uuid::from_u128(2))
            ],
            "a draining instance takes no job"
        );
        let site_a = SubmitRequest {
            labels: BTreeMap::from([("site".into(), "a".into())]),
            ..req()
        };
        assert_eq!(
            choose(&site_a, &fleet).unwrap(),
            [Target::Instance(Uuid::from_u128(1))]
        );
        let draining = SubmitRequest {
            instance: Some(Uuid::from_u128(3)),
            ..req()
        };
        assert_eq!(
            choose(&draining, &fleet).unwrap_err().code,
            ErrorCode::NoInstance
        );
        let two = SubmitRequest {
            channel: Some("default".into()),
            all_instances: true,
            ..req()
        };
        assert_eq!(
            choose(&two, &fleet).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        let other = SubmitRequest {
            command: "nope".into(),
            ..req()
        };
        let e = choose(&other, &fleet).unwrap_err();
        assert!(
            e.message.contains("offered commands: hello"),
            "{}",
            e.message
        );
        let e = choose(&req(), &[]).unwrap_err();
        assert!(
            e.message.contains("no instance is registered"),
            "{}",
            e.message
        );
        let elsewhere = SubmitRequest {
            channel: Some("reports".into()),
            ..req()
        };
        assert!(
            choose(&elsewhere, &fleet)
                .unwrap_err()
                .message
                .contains("on channel 'reports'")
        );
    }
}
