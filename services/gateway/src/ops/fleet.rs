//! Who I am, what I may run and where, and the instances.

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::identity::{Action, Caller, Permission, Principal};
use std::collections::BTreeMap;
use taskwire_core::wire::InstanceInfo;
use taskwire_core::wire::api::{CommandView, InstanceRef, Me};

/// `GET /api/v1/me`: the caller's user, roles and permissions (any authenticated user).
pub fn me(gw: &Gateway, who: &Principal) -> Me {
    Me {
        super_user: gw.acl.is_super(who),
        permissions: gw.acl.permissions(who).into_iter().collect(),
        user: who.user.clone(),
        roles: who.roles.clone(),
    }
}

/// The commands `who` may run, with their parameter schemas, channels and instances.
pub async fn commands(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
) -> Result<Vec<CommandView>, ApiError> {
    gw.audit(
        Some(&who.user),
        Action::CommandsList,
        None,
        true,
        "authenticated users may list the commands they may run",
        caller,
    )
    .await?;
    let mut by_name: BTreeMap<String, CommandView> = BTreeMap::new();
    for inst in gw.instances().await? {
        for c in inst.catalog {
            if !gw.acl.check_run(who, &c.name).allowed {
                continue;
            }
            let view = by_name
                .entry(c.name.clone())
                .or_insert_with(|| CommandView {
                    name: c.name.clone(),
                    description: c.description.clone(),
                    params: c.params.clone(),
                    channels: Vec::new(),
                    instances: Vec::new(),
                });
            for ch in c.channels {
                if !view.channels.contains(&ch) {
                    view.channels.push(ch);
                }
            }
            view.instances.push(InstanceRef {
                guid: inst.guid,
                hostname: inst.hostname.clone(),
            });
        }
    }
    Ok(by_name.into_values().collect())
}

/// The instance registry (`read_instances`).
pub async fn instances(
    gw: &Gateway,
    who: &Principal,
    caller: &Caller,
) -> Result<Vec<InstanceInfo>, ApiError> {
    gw.authorize(
        who,
        caller,
        Action::InstancesList,
        None,
        Permission::ReadInstances,
    )
    .await?;
    gw.instances().await
}
