//! Who may do what. Deny by default: a request is allowed only by a rule that says so, and the
//! rule (or the missing one) is the reason recorded in the audit log.
//!
//! Users are compared by their whole identity (`alice`, `jwt:alice`, `proxy:alice`: see
//! [`crate::identity::Source`]), so people of different sources with the same name never
//! share a super-user grant or each other's jobs and schedules.

use crate::config::GatewayConfig;
use crate::identity::{Permission, Principal};
use std::collections::{BTreeMap, BTreeSet};

/// An allow or deny, with the reason for the audit log and the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

impl Decision {
    pub fn allow(reason: impl Into<String>) -> Self {
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
            super_users: cfg
                .super_users
                .iter()
                .map(|u| super_user_identity(u).to_string())
                .collect(),
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

    /// May `who` list jobs, and whose: `read_any` for everyone's, `read_own` for one's own
    /// (said in the reason), neither refused. The flag says whether everyone's may be shown.
    pub fn read_scope(&self, who: &Principal) -> (Decision, bool) {
        let any = self.check(who, Permission::ReadAny);
        if any.allowed {
            return (any, true);
        }
        let own = self.check(who, Permission::ReadOwn);
        if own.allowed {
            return (
                Decision::allow(format!("{} (own jobs only)", own.reason)),
                false,
            );
        }
        (own, false)
    }

    /// May `who` delete a finished job of `owner`? Needs `delete`, and `read_any` for
    /// another user's job.
    pub fn check_delete(&self, who: &Principal, owner: &str) -> Decision {
        let d = self.check(who, Permission::Delete);
        if !d.allowed || owner == who.user || self.check(who, Permission::ReadAny).allowed {
            return d;
        }
        Decision::deny(format!(
            "the job belongs to {owner}; deleting another user's job also needs read_any"
        ))
    }

    /// May `who` manage schedules (one of `owner`'s, when given)? Needs `manage_schedules`;
    /// another user's schedule only for super users.
    pub fn check_manage(&self, who: &Principal, owner: Option<&str>) -> Decision {
        let d = self.check(who, Permission::ManageSchedules);
        match owner {
            Some(o) if d.allowed && o != who.user && !self.is_super(who) => {
                Decision::deny(format!(
                    "the schedule belongs to {o}; only its owner or a super user may manage it"
                ))
            }
            _ => d,
        }
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

/// The identity a `super_users` entry names: a plain name (or `token:<name>`) is the
/// configured token user, `jwt:<name>` and `proxy:<name>` the users of those sources.
fn super_user_identity(entry: &str) -> &str {
    entry.strip_prefix("token:").unwrap_or(entry)
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
    use crate::identity::Source;

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
        from(Source::Token, user, roles)
    }

    fn from(source: Source, user: &str, roles: &[&str]) -> Principal {
        Principal::new(source, user, roles.iter().map(|r| r.to_string()).collect())
    }

    #[test]
    fn identities_of_different_sources_are_different_users() {
        let mut cfg = GatewayConfig {
            super_users: vec!["root".into(), "jwt:boss".into(), "token:admin".into()],
            ..GatewayConfig::default()
        };
        cfg.roles.insert(
            "ops".into(),
            RoleConfig {
                permissions: vec![Permission::ReadOwn, Permission::KillOwn],
            },
        );
        let a = Acl::new(&cfg);
        assert!(a.is_super(&p("root", &[])));
        assert!(
            a.is_super(&p("admin", &[])),
            "token:admin is the token user admin"
        );
        for source in [Source::Jwt, Source::Proxy] {
            assert!(!a.is_super(&from(source, "root", &[])), "{source:?} root");
            assert!(!a.is_super(&from(source, "admin", &[])), "{source:?} admin");
        }
        assert!(a.is_super(&from(Source::Jwt, "boss", &[])));
        assert!(
            !a.is_super(&p("boss", &[])),
            "jwt:boss is not the token user boss"
        );
        assert!(!a.is_super(&from(Source::Proxy, "boss", &[])));

        // Ownership compares the whole identity: proxy alice is not token alice.
        let token_alice = p("alice", &["ops"]);
        let proxy_alice = from(Source::Proxy, "alice", &["ops"]);
        assert_eq!(proxy_alice.user, "proxy:alice");
        let own = |who: &Principal, owner: &str| {
            a.check_job(who, owner, Permission::KillOwn, Permission::KillAny)
                .allowed
        };
        assert!(own(&token_alice, "alice"));
        assert!(!own(&proxy_alice, "alice"));
        assert!(own(&proxy_alice, "proxy:alice"));
        assert!(!own(&token_alice, "proxy:alice"));
        assert!(!own(&from(Source::Jwt, "alice", &["ops"]), "proxy:alice"));

        assert_eq!(Source::of("jwt:alice"), (Source::Jwt, "alice"));
        assert_eq!(Source::of("proxy:a:b"), (Source::Proxy, "a:b"));
        assert_eq!(Source::of("alice"), (Source::Token, "alice"));
        assert_eq!(Principal::recorded("jwt:x", vec![]).source, Source::Jwt);
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
    fn reading_deleting_and_managing() {
        let a = acl();
        let (d, any) = a.read_scope(&p("alice", &["ops"]));
        assert!(
            d.allowed && !any && d.reason.contains("own jobs only"),
            "{}",
            d.reason
        );
        let (d, any) = a.read_scope(&p("carol", &["lead"]));
        assert!(d.allowed && any);
        let (d, _) = a.read_scope(&p("nobody", &[]));
        assert!(!d.allowed && d.reason.contains("read_own"), "{}", d.reason);

        let mut cfg = GatewayConfig::default();
        cfg.roles.insert(
            "cleaner".into(),
            RoleConfig {
                permissions: vec![Permission::Delete, Permission::ManageSchedules],
            },
        );
        cfg.super_users = vec!["root".into()];
        let a = Acl::new(&cfg);
        let cleaner = p("eve", &["cleaner"]);
        assert!(a.check_delete(&cleaner, "eve").allowed);
        let d = a.check_delete(&cleaner, "bob");
        assert!(
            !d.allowed && d.reason.contains("also needs read_any"),
            "{}",
            d.reason
        );
        assert!(!a.check_delete(&p("dave", &[]), "dave").allowed);
        assert!(a.check_manage(&cleaner, None).allowed);
        assert!(a.check_manage(&cleaner, Some("eve")).allowed);
        let d = a.check_manage(&cleaner, Some("bob"));
        assert!(
            !d.allowed && d.reason.contains("belongs to bob"),
            "{}",
            d.reason
        );
        assert!(a.check_manage(&p("root", &[]), Some("bob")).allowed);
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
