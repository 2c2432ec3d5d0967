//! The executor's test stack: a private nats-server and the shared topology (from
//! `taskwire_teststack`), executors started by each test the way `taskwire up` starts them,
//! and the NATS helpers that read jobs back as a client would.

use std::path::Path;

pub use taskwire_teststack::{Stack, eventually};

/// A stack with nothing but NATS: each test starts its executors.
pub async fn stack() -> Stack {
    Stack::builder().start().await
}

/// A catalog used by most tests. `{dir}` is replaced by a scratch directory.
pub fn catalog(dir: &Path) -> String {
    r#"
[commands.echo]
program = "/bin/echo"
args = ["{text}"]
[[commands.echo.params]]
name = "text"
type = "string"
required = true

[commands.true]
program = "/bin/true"

[commands.fail3]
shell = true
script = 'echo "to stderr" >&2; exit 3'

[commands.wait_file]
shell = true
script = 'while [ ! -e "$1" ]; do sleep 0.02; done; echo done'
args = ["{path}"]
[[commands.wait_file.params]]
name = "path"
type = "string"
required = true

[commands.record]
shell = true
script = 'echo "$TASKWIRE_JOB_ID" >> "{dir}/ran.log"'

[commands.sleep]
program = "/bin/sleep"
args = ["{secs}"]
[[commands.sleep.params]]
name = "secs"
type = "integer"
min = 0
max = 600
required = true
"#
    .replace("{dir}", &dir.display().to_string())
}
