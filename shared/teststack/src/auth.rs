//! NATS of a test as in production: every identity its own key and allow-lists, from the
//! same code `taskwire nats init` uses, and no anonymous connection.
//!
//! Executors join as a test starts them: their identity is added to the config and the
//! server reloads it. With the auth callout on, that cannot be (nats-server does not reload
//! the callout block), so such a stack knows its executors from the start.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use taskwire_core::Namespace;
use taskwire_core::auth::keys::KeyDir;
use taskwire_core::auth::roles::Role;
use taskwire_core::auth::server_conf;
use taskwire_core::nats::Endpoint;

/// The key material and config of a stack's nats-server.
#[derive(Debug)]
pub struct NatsAuth {
    pub keys: KeyDir,
    pub config: PathBuf,
    pub callout: bool,
    ns: Namespace,
    roles: Mutex<Vec<Role>>,
}

/// The services' roles every stack has.
pub fn service_roles() -> Vec<Role> {
    vec![
        Role::Admin,
        Role::Gateway,
        Role::AuditWriter,
        Role::KillBroker,
        Role::Scheduler,
    ]
}

impl NatsAuth {
    /// Keys for the services and `executors` in `dir`, and the config that lists them.
    pub fn new(dir: &Path, ns: &Namespace, executors: Vec<Role>, callout: bool) -> Self {
        let keys = KeyDir::open(&dir.join("nats-keys"))
            .unwrap_or_else(|e| panic!("no key dir for the test's NATS: {e}"));
        let mut roles = service_roles();
        roles.extend(executors);
        let a = Self {
            keys,
            config: dir.join("nats-auth.conf"),
            callout,
            ns: ns.clone(),
            roles: Mutex::new(roles),
        };
        a.write();
        a
    }

    fn write(&self) {
        let roles = self.roles.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.keys
            .ensure(&roles)
            .unwrap_or_else(|e| panic!("cannot make the test's NATS keys: {e}"));
        let text = server_conf::render(&self.keys, &roles, &self.ns, self.callout)
            .unwrap_or_else(|e| panic!("cannot render the test's NATS config: {e}"));
        std::fs::write(&self.config, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config.display()));
    }

    /// Whether `role` is known to the config.
    pub fn knows(&self, role: &Role) -> bool {
        self.roles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(role)
    }

    /// Adds `role` to the config (the caller reloads the server). `false` when it was there.
    pub fn add(&self, role: Role) -> bool {
        if self.knows(&role) {
            return false;
        }
        assert!(
            !self.callout,
            "a stack with the auth callout cannot add identities after it started (nats-server does not reload the auth_callout block): start {role:?} with the builder"
        );
        // An executor started again with other channels replaces its old entry.
        {
            let mut roles = self.roles.lock().unwrap_or_else(|p| p.into_inner());
            if let Role::Executor { guid, .. } = &role {
                roles.retain(|r| !matches!(r, Role::Executor { guid: g, .. } if g == guid));
            }
            roles.push(role);
        }
        self.write();
        true
    }

    /// Where `role` connects: `url` with its key and its inbox prefix.
    pub fn endpoint(&self, url: &str, role: &Role) -> Endpoint {
        Endpoint::new(url, Some(self.keys.path(role))).with_inbox(role.inbox_prefix())
    }
}

/// Waits until the server accepts `ep` (after a reload added it).
pub async fn wait_accepted(ep: &Endpoint) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match taskwire_core::nats::connect_once_to(ep, "reload-check").await {
            Ok(c) => {
                drop(c);
                return;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("nats-server did not take the new identity within 20 s: {e}"),
        }
    }
}
