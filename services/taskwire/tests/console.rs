//! The web console in a real browser: `taskwire up` (its own nats-server, executor, gateway,
//! kill broker, scheduler and audit writer) plus a second executor, and the end-to-end tests of
//! `services/gateway/console/e2e` driving headless Chromium through Playwright against it.
//! Screenshots of every page land in `<target>/tmp/console-screenshots`.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::start_up_with;
use taskwire_core::Namespace;
use taskwire_core::topology::TopologyConfig;
use taskwire_executor::config::ExecutorConfig;
use taskwire_executor::{Executor, ExecutorOptions};

const CATALOG: &str = r####"
[commands.hello]
description = "Greets"
program = "/bin/echo"
args = ["Hello, {name}!"]
[[commands.hello.params]]
name = "name"
type = "string"
pattern = "[A-Za-z ]{1,20}"
default = "world"

[commands.count]
description = "Counts to n, a line every 0.3 s"
shell = true
script = 'i=1; while [ "$i" -le "$1" ]; do echo "line $i"; i=$((i + 1)); sleep 0.3; done'
args = ["{n}"]
[[commands.count.params]]
name = "n"
type = "integer"
required = true
min = 1
max = 100

[commands.bar]
description = "Draws a progress bar in place"
shell = true
script = 'for s in "#   ] 25" "##  ] 50" "### ] 75"; do printf "\r[%s%%" "$s"; sleep 0.3; done; printf "\r[####] 100%%\n"; echo done'

[commands.forever]
description = "Ticks until stopped"
shell = true
script = 'n=0; while true; do n=$((n + 1)); echo "tick $n"; sleep 0.2; done'

[commands.colors]
description = "Colours on stdout, a line on stderr"
shell = true
script = 'printf "\033[32mgreen\033[0m \033[1;34mblue bold\033[0m\n"; echo "to stderr" >&2'
"####;

/// User `viewer`: may run `hello` and `count`, read and stop its own jobs; no kill, no audit.
const VIEWER_TOKEN: &str = "tw_viewer_token_for_the_console_tests_0123456789";

fn console_dir() -> PathBuf {
    taskwire_testkit::workspace_root().join("services/gateway/console")
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("TW_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "no Chromium at {}: run ops/install-deps (it installs Debian's chromium), or set TW_CHROMIUM",
        path.display()
    );
    path
}

/// `npm run <script>` in the console folder, output to the test's output.
fn npm(script: &str, envs: &[(&str, String)], within: Duration) {
    let dir = console_dir();
    assert!(
        dir.join("node_modules").is_dir(),
        "the console's npm packages are missing: run ops/install-deps (npm ci in {})",
        dir.display()
    );
    // Node.js as ops/install-deps left it: its own copy first when the system's is too old.
    let tools = taskwire_testkit::workspace_root().join(".taskwire/tools/node/bin");
    let path = std::env::join_paths(std::iter::once(tools).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut child = Command::new("npm")
        .args(["run", "--silent", script])
        .current_dir(&dir)
        .env("PATH", path)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        // Its own process group, so a timeout ends node and the browser too.
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("npm could not start ({e}): run ops/install-deps"));
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            panic!("npm run {script} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "npm run {script} failed: {status}");
}

fn write_config(dir: &Path, dist: &Path) -> PathBuf {
    let config = dir.join("taskwire.toml");
    let hash = taskwire_gateway::auth::hash_hex(VIEWER_TOKEN);
    std::fs::write(
        &config,
        format!(
            r#"
[gateway]
console_dir = "{dist}"

[[gateway.tokens]]
user = "viewer"
roles = ["viewer"]
sha256 = "{hash}"

[gateway.roles.viewer]
permissions = ["run", "read_own", "stop_own"]

[gateway.commands.allowed.hello]
roles = ["viewer"]

[gateway.commands.allowed.count]
roles = ["viewer"]
"#,
            dist = dist.display()
        ),
    )
    .unwrap();
    config
}

#[test]
fn the_console_works_end_to_end_in_headless_chromium() {
    let chromium = chromium();
    npm("build", &[], Duration::from_secs(120));
    let dist = console_dir().join("dist");

    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let config = write_config(dir.path(), &dist);
    let mut up = start_up_with(
        state.path(),
        &[
            "--catalog",
            catalog.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let console_line = up.lines.iter().find(|l| l.contains("console:")).unwrap();
    assert!(
        !console_line.contains("not built"),
        "taskwire up does not serve the build: {console_line}"
    );

    // A second instance beside the one `taskwire up` runs: the instances page shows both.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let second_state = dir.path().join("second-executor");
    let second = rt.block_on(async {
        // `taskwire up` knows one executor; a second one joins with the admin identity of its
        // state dir (the admin makes its consumers first), which is enough for this page.
        let admin = up.admin_client("console-test").await;
        let js = taskwire_core::nats::jetstream(admin);
        let topo = taskwire_core::topology::open(&js, &Namespace::root())
            .await
            .unwrap();
        let entry = taskwire_core::topology::ExecutorEntry {
            guid: taskwire_executor::identity::load_or_create(&second_state).unwrap(),
            channels: vec!["default".into()],
        };
        taskwire_core::topology::ensure_consumers(&topo, &Namespace::root(), &[entry])
            .await
            .unwrap();
        Executor::start(ExecutorOptions {
            nats_url: up.nats_url.clone(),
            nats_credentials: Some(up.keys.join("admin.nk")),
            namespace: Namespace::root(),
            state_dir: second_state.clone(),
            topology: TopologyConfig::default(),
            config: ExecutorConfig {
                catalog: catalog.clone(),
                labels: [("site".to_string(), "second".to_string())].into(),
                hostname: Some("second-host".into()),
                dispatch_trusted_keys: vec![up.signer().public_key()],
                ..ExecutorConfig::default()
            },
        })
        .await
        .unwrap()
    });

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let url = up.api.trim_end_matches("/api/v1").to_string();
    npm(
        "e2e",
        &[
            ("TW_URL", url),
            ("TW_ADMIN_TOKEN", up.token.clone()),
            ("TW_VIEWER_TOKEN", VIEWER_TOKEN.to_string()),
            ("TW_SCREENSHOTS", shots.display().to_string()),
            ("TW_CHROMIUM", chromium.display().to_string()),
        ],
        Duration::from_secs(600),
    );
    let taken = std::fs::read_dir(&shots).unwrap().count();
    eprintln!("{taken} screenshots in {}", shots.display());
    assert!(
        taken >= 7,
        "only {taken} screenshots in {}",
        shots.display()
    );

    rt.block_on(second.drain()).unwrap();
    assert!(support::stop(&mut up).success());
}
