//! The test users, one per kind of caller a test needs:
//!
//! | user | roles | may |
//! | --- | --- | --- |
//! | alice, bob, erin | ops | run the allowed commands; read, stop, kill and delete their own jobs; list instances; manage their own schedules |
//! | carol | lead | read and kill anyone's jobs, read the audit log; run nothing |
//! | root | (super user) | everything |
//! | dave | none | nothing but authenticate |
//!
//! Each user's token is [`token`]`(user)`.

use taskwire_gateway::config::{AllowedCommand, RoleConfig, TokenConfig};
use taskwire_gateway::{GatewayConfig, Permission};

/// The API token of a test user.
pub fn token(user: &str) -> String {
    format!("tw_test_token_of_{user}")
}

/// A gateway on a free loopback port with the test users; role ops may run `commands`.
pub fn gateway_config(commands: &[&str]) -> GatewayConfig {
    let mut cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        super_users: vec!["root".into()],
        ..GatewayConfig::default()
    };
    cfg.roles.insert(
        "ops".into(),
        RoleConfig {
            permissions: vec![
                Permission::Run,
                Permission::ReadOwn,
                Permission::StopOwn,
                Permission::KillOwn,
                Permission::Delete,
                Permission::ReadInstances,
                Permission::ManageSchedules,
            ],
        },
    );
    cfg.roles.insert(
        "lead".into(),
        RoleConfig {
            permissions: vec![
                Permission::ReadAny,
                Permission::KillAny,
                Permission::ReadAudit,
            ],
        },
    );
    for (user, roles) in [
        ("alice", vec!["ops"]),
        ("bob", vec!["ops"]),
        ("erin", vec!["ops"]),
        ("carol", vec!["lead"]),
        ("root", vec![]),
        ("dave", vec![]),
    ] {
        cfg.tokens.push(TokenConfig {
            user: user.into(),
            sha256: taskwire_gateway::auth::hash_hex(&token(user)),
            roles: roles.into_iter().map(String::from).collect(),
        });
    }
    for c in commands {
        allow(&mut cfg, c, &["ops"]);
    }
    cfg
}

/// Lets `roles` run `command` (no roles: super users only).
pub fn allow(cfg: &mut GatewayConfig, command: &str, roles: &[&str]) {
    cfg.commands.allowed.insert(
        command.into(),
        AllowedCommand {
            roles: roles.iter().map(|r| r.to_string()).collect(),
        },
    );
}
