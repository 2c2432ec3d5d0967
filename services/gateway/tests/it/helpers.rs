//! The gateway's test stack: a private nats-server, one executor with a small catalog, a
//! kill broker, a gateway with the test users (see `taskwire_teststack::users`), and (when a
//! test asks) an audit writer; all helpers come from `taskwire_teststack`.

use std::ops::{Deref, DerefMut};
use taskwire_gateway::GatewayConfig;
use taskwire_kill_broker::{KillBroker, KillBrokerConfig, KillBrokerOptions};
use taskwire_teststack::users;

pub use taskwire_teststack::token;

pub const CATALOG: &str = r#"
[commands.echo]
program = "/bin/echo"
args = ["{text}"]
[[commands.echo.params]]
name = "text"
type = "string"
required = true

[commands.lines]
shell = true
script = 'i=1; while [ $i -le $1 ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done; echo done >&2; printf "\377end"'
args = ["{n}"]
[[commands.lines.params]]
name = "n"
type = "integer"
min = 1
max = 5000
required = true

[commands.blob]
program = "/usr/bin/head"
args = ["-c", "{bytes}", "/dev/urandom"]
[[commands.blob.params]]
name = "bytes"
type = "integer"
min = 1
max = 100000000
required = true

[commands.burst]
shell = true
script = 'sleep 1; echo start; sleep 1; head -c 24000000 /dev/urandom'

[commands.drip]
shell = true
script = 'sleep 1; i=0; while [ $i -lt 64 ]; do head -c 16384 /dev/urandom; i=$((i+1)); sleep 0.05; done'

[commands.logdrip]
shell = true
script = 'sleep 1; i=0; while [ $i -lt 48 ]; do seq $((i*3000+1)) $((i*3000+3000)); i=$((i+1)); sleep 0.05; done'

[commands.stubborn]
shell = true
script = 'trap "" INT TERM; (trap "" INT TERM; sleep 300) & echo $! > "$1/child"; setsid sh -c "trap \"\" INT TERM; sleep 300" & echo $! > "$1/escapee"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'
args = ["{dir}"]
kill = [{ signal = "SIGINT", wait = "300ms" }, { signal = "SIGTERM", wait = "300ms" }, { signal = "SIGKILL", wait = "2s" }]
stop = { signal = "SIGTERM", grace = "300ms" }
[[commands.stubborn.params]]
name = "dir"
type = "string"
required = true

[commands.secret]
program = "/bin/echo"
args = ["secret"]

[commands.unlisted]
program = "/bin/echo"
args = ["unlisted"]
"#;

/// The commands role ops may run; `secret` is for super users only.
pub fn gateway_config() -> GatewayConfig {
    let mut cfg = users::gateway_config(&[
        "echo", "lines", "blob", "burst", "drip", "logdrip", "stubborn",
    ]);
    users::allow(&mut cfg, "secret", &[]);
    cfg
}

/// The stack of the gateway tests.
pub struct Stack(taskwire_teststack::Stack);

impl Deref for Stack {
    type Target = taskwire_teststack::Stack;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Stack {
    pub async fn new() -> Self {
        Self::with(gateway_config()).await
    }

    /// The stack with another gateway configuration.
    pub async fn with(cfg: GatewayConfig) -> Self {
        Self(
            taskwire_teststack::Stack::builder()
                .executor(CATALOG)
                .kill_broker()
                .gateway(cfg)
                .start()
                .await,
        )
    }

    /// The stack plus an audit writer on a SQLite file.
    pub async fn with_audit_store() -> Self {
        Self(
            taskwire_teststack::Stack::builder()
                .executor(CATALOG)
                .kill_broker()
                .audit_writer()
                .gateway(gateway_config())
                .start()
                .await,
        )
    }

    /// A second kill broker on the stack's server, configured by the test.
    pub async fn broker(&self, config: KillBrokerConfig) -> KillBroker {
        KillBroker::start(KillBrokerOptions {
            nats_url: self.nats_url(),
            nats_credentials: Some(
                self.auth
                    .keys
                    .path(&taskwire_core::auth::roles::Role::KillBroker),
            ),
            namespace: self.ns.clone(),
            topology: self.topology.clone(),
            config,
        })
        .await
        .unwrap()
    }
}
