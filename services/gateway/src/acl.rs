//! Who may do what. Deny by default: a request is allowed only by a rule that says so, and the
//! rule (or the missing one) is the reason recorded in the audit log.

use crate::auth::Principal;
use crate::config::GatewayConfig;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A permission per API verb, granted to roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Submit jobs (of the commands the role is allowed).
    Run,
    /// Read one's own jobs and their output.
    ReadOwn,
    /// Read anyone's jobs and their output.
    ReadAny,
    StopOwn,
    StopAny,
    KillOwn,
    KillAny,
    /// Delete finished jobs (one's own with `read_own`, anyone's with `read_any`).
    Delete,
    ManageSchedules,
    ReadAudit,
    ReadInstances,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Run => "run",
            Permission::ReadOwn => "read_own",
            Permission::ReadAny => "read_any",
            Permission::StopOwn => "stop_own",
            Permission::StopAny => "stop_any",
            Permission::KillOwn => "kill_own",
            Permission::KillAny => "kill_any",
            Permission::Delete => "delete",
            Permission::ManageSchedules => "manage_schedules",
            Permission::ReadAudit => "read_audit",
            Permission::ReadInstances => "read_instances",
        }
    }

    pub const ALL: [Permission; 11] = [
        Permission::Run,
        Permission::ReadOwn,
        Permission::ReadAny,
        Permission::StopOwn,
        Permission::StopAny,
        Permission::KillOwn,
        Permission::KillAny,
        Permission::Delete,
        Permission::ManageSchedules,
        Permission::ReadAudit,
        Permission::ReadInstances,
    ];
}

/// An allow or deny, with the reason for the audit log and the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

impl Decision {
    fn allow(reason: impl Into<String>) -> Self {
        Self {
            allowed: true,
            reason: reason.into(),
        }
    }
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reason: reason.into(),
        }
    }
}

/// The access rules, built from the configuration.
#[derive(Debug, Clone)]
pub struct Acl {
    super_users: BTreeSet<String>,
    roles: BTreeMap<String, BTreeSet<Permission>>,
    commands: BTreeMap<String, BTreeSet<String>>,
}

impl Acl {
    pub fn new(cfg: &GatewayConfig) -> Self {
        Self {
            super_users: cfg.super_users.iter().cloned().collect(),
            roles: cfg
                .roles
                .iter()
                .map(|(r, c)| (r.clone(), c.permissions.iter().copied().collect()))
                .collect(),
            commands: cfg
                .commands
                .allowed
                .iter()
                .map(|(c, a)| (c.clone(), a.roles.iter().cloned().collect()))
                .collect(),
        }
    }

    pub fn is_super(&self, who: &Principal) -> bool {
        self.super_users.contains(&who.user)
    }

    /// The permissions `who` holds through its roles (all of them for a super user).
    pub fn permissions(&self, who: &Principal) -> BTreeSet<Permission> {
        if self.is_super(who) {
            return Permission::ALL.into_iter().collect();
        }
        who.roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flatten()
            .copied()
            .collect()
    }

    /// May `who` use a verb that needs `perm`?
    pub fn check(&self, who: &Principal, perm: Permission) -> Decision {
        if self.is_super(who) {
            return Decision::allow(format!("{} is a super user", who.user));
        }
        match who
            .roles
            .iter()
            .find(|r| self.roles.get(*r).is_some_and(|p| p.contains(&perm)))
        {
            Some(r) => Decision::allow(format!("role {r} grants {}", perm.as_str())),
            None => Decision::deny(format!(
                "{} has no role granting {} (roles: {})",
                who.user,
                perm.as_str(),
                roles_text(who)
            )),
        }
    }

    /// May `who` act on a job owned by `owner`, given the own/any pair of permissions?
    pub fn check_job(
        &self,
        who: &Principal,
        owner: &str,
        own: Permission,
        any: Permission,
    ) -> Decision {
        let any_d = self.check(who, any);
        if any_d.allowed {
            return any_d;
        }
        if owner == who.user {
            let own_d = self.check(who, own);
            if own_d.allowed {
                return own_d;
            }
            return Decision::deny(format!(
                "{} has no role granting {} or {} (roles: {})",
                who.user,
                own.as_str(),
                any.as_str(),
                roles_text(who)
            ));
        }
        Decision::deny(format!(
            "the job belongs to {owner}; {} has no role granting {} (roles: {})",
            who.user,
            any.as_str(),
            roles_text(who)
        ))
    }

    /// May `who` run `command`? Needs `run` and a role listed for the command. A command with
    /// an empty role list, or not listed at all, is for super users only.
    pub fn check_run(&self, who: &Principal, command: &str) -> Decision {
        if self.is_super(who) {
            return Decision::allow(format!("{} is a super user", who.user));
        }
        let run = self.check(who, Permission::Run);
        if !run.allowed {
            return run;
        }
        match self.commands.get(command) {
            None => Decision::deny(format!(
                "command '{command}' is not in the allowed commands; only super users may run it"
            )),
            Some(roles) if roles.is_empty() => Decision::deny(format!(
                "command '{command}' lists no roles; only super users may run it"
            )),
            Some(roles) => match who.roles.iter().find(|r| roles.contains(*r)) {
                Some(r) => Decision::allow(format!("role {r} may run {command}")),
                None => Decision::deny(format!(
                    "{} may not run '{command}': it is allowed for roles {} and {} has {}",
                    who.user,
                    roles.iter().cloned().collect::<Vec<_>>().join(", "),
                    who.user,
                    roles_text(who)
                )),
            },
        }
    }
}

fn roles_text(who: &Principal) -> String {
    if who.roles.is_empty() {
        "none".into()
    } else {
        who.roles.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AllowedCommand, RoleConfig};

    fn acl() -> Acl {
        let mut cfg = GatewayConfig {
            super_users: vec!["root".into()],
            ..GatewayConfig::default()
        };
        cfg.roles.insert(
            "ops".into(),
            RoleConfig {
                permissions: vec![Permission::Run, Permission::ReadOwn, Permission::KillOwn],
            },
        );
        cfg.roles.insert(
            "lead".into(),
            RoleConfig {
                permissions: vec![Permission::ReadAny, Permission::KillAny],
            },
        );
        cfg.commands.allowed.insert(
            "hello".into(),
            AllowedCommand {
                roles: vec!["ops".into()],
            },
        );
        cfg.commands
            .allowed
            .insert("danger".into(), AllowedCommand { roles: vec![] });
        Acl::new(&cfg)
    }

    fn p(user: &str, roles: &[&str]) -> Principal {
        Principal {
            user: user.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn run_needs_the_permission_and_a_listed_role() {
        let a = acl();
        assert!(a.check_run(&p("alice", &["ops"]), "hello").allowed);
        let d = a.check_run(&p("lead", &["lead"]), "hello");
        assert!(!d.allowed);
        assert!(d.reason.contains("no role granting run"), "{}", d.reason);
        let d = a.check_run(&p("alice", &["ops"]), "danger");
        assert!(d.reason.contains("only super users"), "{}", d.reason);
        let d = a.check_run(&p("alice", &["ops"]), "unlisted");
        assert!(!d.allowed && d.reason.contains("not in the allowed commands"));
        assert!(a.check_run(&p("root", &[]), "danger").allowed);
        assert!(!a.check_run(&p("nobody", &[]), "hello").allowed);
    }

    #[test]
    fn own_and_any() {
        let a = acl();
        let alice = p("alice", &["ops"]);
        assert!(
            a.check_job(&alice, "alice", Permission::KillOwn, Permission::KillAny)
                .allowed
        );
        let d = a.check_job(&alice, "bob", Permission::KillOwn, Permission::KillAny);
        assert!(!d.allowed);
        assert!(d.reason.contains("belongs to bob"), "{}", d.reason);
        assert!(
            a.check_job(
                &p("carol", &["lead"]),
                "bob",
                Permission::KillOwn,
                Permission::KillAny
            )
            .allowed
        );
        assert!(
            a.check_job(
                &p("root", &[]),
                "bob",
                Permission::KillOwn,
                Permission::KillAny
            )
            .allowed
        );
        assert_eq!(a.permissions(&p("root", &[])).len(), Permission::ALL.len());
    }
}
