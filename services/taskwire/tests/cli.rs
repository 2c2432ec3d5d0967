//! The `taskwire` client against a real stack (`taskwire up`: its own nats-server, executor,
//! gateway, kill broker and audit writer): what an operator at a terminal relies on.

#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{Up, start_up_with};

const CATALOG: &str = r#"
[commands.hello]
description = "Greets"
program = "/bin/echo"
args = ["Hello, {name}!"]
[[commands.hello.params]]
name = "name"
type = "string"
pattern = "[A-Za-z ]{1,20}"
default = "world"

[commands.exit3]
description = "Fails with code 3"
shell = true
script = 'echo "to stdout"; echo "to stderr" >&2; exit 3'

[commands.bar]
description = "Draws a progress bar in place"
shell = true
script = 'printf "\r[#   ] 25%%"; printf "\r[##  ] 50%%"; printf "\r[####] 100%%\n"; echo done'

[commands.count]
description = "Counts to n slowly"
shell = true
script = 'i=1; while [ "$i" -le "$1" ]; do echo "line $i"; i=$((i + 1)); sleep 0.2; done'
args = ["{n}"]
[[commands.count.params]]
name = "n"
type = "integer"
min = 1
max = 100

[commands.forever]
description = "Ticks until stopped"
shell = true
script = 'n=0; while true; do n=$((n + 1)); echo "tick $n"; sleep 0.2; done'
"#;

/// The token of user `viewer` (role `viewer`: may run `hello` and read its own jobs).
const VIEWER_TOKEN: &str = "tw_viewer_token_for_the_cli_tests_0123456789";

struct Stack {
    up: Up,
    _state: tempfile::TempDir,
    dir: tempfile::TempDir,
}

fn stack() -> Stack {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let config = dir.path().join("taskwire.toml");
    let hash = taskwire_gateway::auth::hash_hex(VIEWER_TOKEN);
    std::fs::write(
        &config,
        format!(
            r#"
[[gateway.tokens]]
user = "viewer"
roles = ["viewer"]
sha256 = "{hash}"

[gateway.roles.viewer]
permissions = ["run", "read_own", "stop_own"]

[gateway.commands.allowed.hello]
roles = ["viewer"]
"#
        ),
    )
    .unwrap();
    let up = start_up_with(
        state.path(),
        &[
            "--catalog",
            catalog.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    Stack {
        up,
        _state: state,
        dir,
    }
}

impl Stack {
    fn url(&self) -> String {
        self.up.api.trim_end_matches("/api/v1").to_string()
    }

    /// The client command as `token`'s user, with no saved login and no terminal.
    fn cli_as(&self, token: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_taskwire"));
        c.args(args)
            .env("TASKWIRE_URL", self.url())
            .env("TASKWIRE_TOKEN", token)
            .env("TASKWIRE_CLI_CONFIG", self.dir.path().join("no-login.toml"))
            .env_remove("TASKWIRE_CONFIG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn cli(&self, args: &[&str]) -> Command {
        self.cli_as(&self.up.token, args)
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cli(args).output().unwrap();
        eprintln!(
            "taskwire {args:?} -> {:?}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{args:?} failed");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {:?}", out.stdout))
    }

    /// `json(args)` once it satisfies `ready` (the audit store writes asynchronously).
    async fn json_when(&self, args: &[&str], ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.json(args);
            if ready(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{args:?} never got there: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn api(&self, path: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.up.api))
            .bearer_auth(&self.up.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn job_state(&self, id: &str) -> String {
        let v = self.api(&format!("/jobs/{id}")).await;
        v["state"].as_str().unwrap().to_string()
    }

    async fn wait_state(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.job_state(id).await;
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "job {id} is {s}, never {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn ids_of<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|j| j[key].as_str().unwrap())
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Starts `taskwire run forever` and returns it once its first tick arrived.
fn start_forever(
    s: &Stack,
    extra: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut args = vec!["run", "forever"];
    args.extend_from_slice(extra);
    let mut child = s
        .cli(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "tick 1\n");
    (child, out)
}

fn wait_exit(child: &mut std::process::Child) -> i32 {
    wait_status(child).code().unwrap()
}

fn wait_status(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "taskwire did not return");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newest running job of `command`, read from the live job store (the history the
/// client lists is written a moment later).
async fn newest_job(s: &Stack, command: &str) -> String {
    use futures::StreamExt;
    let client = s.up.admin_client("cli-test").await;
    let js = taskwire_core::nats::jetstream(client);
    let topo = taskwire_core::topology::open(&js, &taskwire_core::Namespace::root())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut keys = topo.jobs.keys().await.unwrap();
        let mut newest: Option<String> = None;
        while let Some(k) = keys.next().await {
            let k = k.unwrap();
            if let Some(v) = topo.jobs.get(&k).await.unwrap() {
                let r: Value = serde_json::from_slice(&v).unwrap();
                if r["command"] == command
                    && r["state"] == "running"
                    && newest.as_ref().is_none_or(|n| *n < k)
                {
                    newest = Some(k);
                }
            }
        }
        if let Some(n) = newest {
            return n;
        }
        assert!(Instant::now() < deadline, "no running {command} job");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_streams_the_output_and_exits_with_the_jobs_code() {
    let s = stack();
    let ok = s.run(&["run", "hello", "--param", "name=Ada"]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(text(&ok.stdout), "Hello, Ada!\n");

    let failed = s.run(&["run", "exit3"]);
    assert_eq!(failed.status.code(), Some(3));
    assert_eq!(text(&failed.stdout), "to stdout\n");
    assert_eq!(text(&failed.stderr), "to stderr\n");

    // A progress bar drawn with \r arrives byte for byte, so the terminal draws it in place.
    let bar = s.run(&["run", "bar"]);
    assert_eq!(bar.status.code(), Some(0));
    assert_eq!(
        bar.stdout,
        b"\r[#   ] 25%\r[##  ] 50%\r[####] 100%\ndone\n".to_vec()
    );

    // Killed from another terminal: the follower sees who did it and exits 137.
    let (mut child, _out) = start_forever(&s, &[]);
    let id = newest_job(&s, "forever").await;
    let k = s.run(&["kill", &id]);
    assert!(k.status.success(), "{}", text(&k.stdout));
    assert!(
        text(&k.stdout).contains("killed by admin"),
        "{}",
        text(&k.stdout)
    );
    assert_eq!(wait_exit(&mut child), 137);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("PROCESS KILLED BY admin"), "{err}");
    s.wait_state(&id, "killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_then_logs_follow_shows_the_whole_output_from_the_start() {
    let s = stack();
    let d = s.run(&["run", "count", "-p", "n=10", "--detach"]);
    assert_eq!(d.status.code(), Some(0));
    let id = text(&d.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "detach prints the job id: {id:?}");
    assert!(text(&d.stderr).contains(&format!("taskwire logs -f {id}")));
    // Join late, by a short prefix of the id.
    s.wait_state(&id, "running").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let short = &id[..24];
    let logs = s.run(&["logs", "-f", short]);
    assert_eq!(logs.status.code(), Some(0));
    let want: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    assert_eq!(text(&logs.stdout), want);
    assert_eq!(s.job_state(&id).await, "succeeded");
    // Once over, the log reads the same, and from a later chunk only its tail.
    assert_eq!(text(&s.run(&["logs", &id]).stdout), want);
    let tail = text(&s.run(&["logs", &id, "--from-seq", "2"]).stdout);
    assert!(
        want.ends_with(&tail) && !tail.is_empty() && tail.len() < want.len(),
        "{tail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_waits_for_a_delayed_job_then_shows_its_output() {
    let s = stack();
    // Far enough ahead that the follow below starts before it, even on a busy machine.
    let at = (chrono::Utc::now() + chrono::Duration::seconds(10)).to_rfc3339();
    let d = s.run(&["run", "hello", "-p", "name=Later", "--not-before", &at]);
    assert_eq!(d.status.code(), Some(0), "{}", text(&d.stderr));
    let id = text(&d.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "a delayed run prints the job id: {id:?}");
    assert_eq!(s.json(&["show", &id])["state"], "scheduled");
    // Followed before its time: it waits, then shows the job's output to its end.
    let logs = s.run(&["logs", "-f", &id]);
    assert_eq!(logs.status.code(), Some(0), "{}", text(&logs.stderr));
    assert!(
        text(&logs.stderr).contains("waits for its time"),
        "{}",
        text(&logs.stderr)
    );
    assert_eq!(text(&logs.stdout), "Hello, Later!\n");
    assert_eq!(s.job_state(&id).await, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_show_what_the_api_lists() {
    let s = stack();
    assert_eq!(s.run(&["run", "hello"]).status.code(), Some(0));
    assert_eq!(s.run(&["run", "exit3"]).status.code(), Some(3));
    let (mut running, _out) = start_forever(&s, &["--on-interrupt", "detach"]);
    let forever = newest_job(&s, "forever").await;

    // ps: running and queued only; --all: the history too. Same ids as the API.
    let ps = s
        .json_when(&["ps"], |v| {
            v["jobs"].as_array().unwrap().len() == 1 && v["jobs"][0]["job_id"] == forever.as_str()
        })
        .await;
    let ids: Vec<&str> = ps["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![forever.as_str()]);
    // The history comes from the audit store, which writes within moments.
    let all = s
        .json_when(&["ps", "--all"], |v| {
            v["jobs"].as_array().unwrap().len() == 3
        })
        .await;
    let api = s.api("/jobs").await;
    assert_eq!(
        ids_of(&all["jobs"], "job_id"),
        ids_of(&api["jobs"], "job_id")
    );
    let human = text(&s.run(&["ps", "--all"]).stdout);
    assert!(human.starts_with("ID "), "{human}");
    for (cmd, state) in [
        ("hello", "succeeded"),
        ("exit3", "failed"),
        ("forever", "running"),
    ] {
        assert!(
            human.lines().any(|l| l.contains(cmd) && l.contains(state)),
            "{cmd} {state} in\n{human}"
        );
    }

    // show: the record the API gives, by id prefix.
    let show = s.json(&["show", &forever[..20]]);
    assert_eq!(show["job_id"], Value::from(forever.clone()));
    assert_eq!(show["state"], "running");
    assert!(text(&s.run(&["show", &forever]).stdout).contains("command:     forever"));

    // instances: the registry.
    let inst = s.json(&["instances"]);
    let api_inst = s.api("/instances").await;
    assert_eq!(inst[0]["guid"], api_inst[0]["guid"]);
    let human = text(&s.run(&["instances"]).stdout);
    assert!(
        human.contains(api_inst[0]["guid"].as_str().unwrap()),
        "{human}"
    );
    assert!(human.contains("serving"), "{human}");

    // commands and whoami.
    let cmds = s.json(&["commands"]);
    let names: Vec<&str> = cmds
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bar", "count", "exit3", "forever", "hello"]);
    assert_eq!(s.json(&["whoami"])["user"], "admin");

    // audit: the same entries as the API, with the filters passed through.
    let au = s
        .json_when(
            &["audit", "--action", "jobs.submit", "--limit", "10"],
            |v| v["entries"].as_array().unwrap().len() == 3,
        )
        .await;
    let api_au = s.api("/audit?action=jobs.submit&limit=10").await;
    assert_eq!(au, api_au);

    assert_eq!(s.run(&["stop", &forever]).status.code(), Some(0));
    s.wait_state(&forever, "stopped").await;
    // The detached follower was never interrupted: it saw the stop and exits 143.
    assert_eq!(wait_exit(&mut running), 143);
    // rm deletes a finished job.
    assert_eq!(s.run(&["rm", &forever]).status.code(), Some(0));
    // The audit store drops its copy moments later; then the job is unknown everywhere.
    let deadline = Instant::now() + Duration::from_secs(30);
    let gone = loop {
        let gone = s.run(&["show", &forever]);
        if gone.status.code() != Some(0) || Instant::now() > deadline {
            break gone;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(gone.status.code(), Some(1));
    assert!(text(&gone.stderr).contains("not"), "{}", text(&gone.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_non_zero_and_say_why() {
    let s = stack();
    // A command the viewer may not run: refused (126) with the reason, and audited.
    let denied = s
        .cli_as(VIEWER_TOKEN, &["run", "forever"])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(126));
    let err = text(&denied.stderr);
    assert!(err.contains("denied:") && err.contains("forever"), "{err}");
    // The audit store records the denial (it writes asynchronously, within moments).
    let au = s
        .json_when(&["audit", "--denied", "--actor", "viewer"], |v| {
            !v["entries"][0].is_null()
        })
        .await;
    assert_eq!(au["entries"][0]["action"], "jobs.submit");
    assert_eq!(au["entries"][0]["target"], "forever");
    // ... but hello it may.
    let ok = s.cli_as(VIEWER_TOKEN, &["run", "hello"]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0));
    // Audit needs read_audit, which the viewer lacks.
    let no = s.cli_as(VIEWER_TOKEN, &["audit"]).output().unwrap();
    assert_eq!(no.status.code(), Some(1));
    assert!(text(&no.stderr).contains("denied:"), "{}", text(&no.stderr));

    // An unknown command names the nearest ones.
    let unknown = s.run(&["run", "helo"]);
    assert_eq!(unknown.status.code(), Some(126));
    assert!(
        text(&unknown.stderr).contains("Did you mean: hello?"),
        "{}",
        text(&unknown.stderr)
    );
    // A parameter of the wrong type is caught before anything is sent.
    let bad = s.run(&["run", "count", "-p", "n=ten"]);
    assert_eq!(bad.status.code(), Some(126));
    assert!(
        text(&bad.stderr).contains("parameter n is an integer"),
        "{}",
        text(&bad.stderr)
    );

    // A bad token, and a server that is not there, say what to check.
    let tok = s.cli_as("tw_not_a_real_token", &["ps"]).output().unwrap();
    assert_eq!(tok.status.code(), Some(1));
    assert!(
        text(&tok.stderr).contains("refused the token"),
        "{}",
        text(&tok.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = s
        .cli(&["ps"])
        .env("TASKWIRE_URL", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    let err = text(&gone.stderr);
    assert!(
        err.contains(&format!(
            "cannot reach the taskwire server at http://127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_or_detaches_as_chosen() {
    let s = stack();
    // Asked what to do, the user answers "stop": the job is stopped and run exits 143.
    let (mut child, _out) = start_forever(&s, &["--on-interrupt", "ask"]);
    let id = newest_job(&s, "forever").await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    child.stdin.as_mut().unwrap().write_all(b"s\n").unwrap();
    assert_eq!(wait_exit(&mut child), 143);
    s.wait_state(&id, "stopped").await;

    // Without a terminal the default is to detach: run returns 130 (interrupted), the job
    // keeps running.
    let (mut child, _out) = start_forever(&s, &[]);
    let id = newest_job(&s, "forever").await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    assert_eq!(wait_exit(&mut child), 130);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains(&format!("taskwire logs -f {id}")), "{err}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.job_state(&id).await, "running");
    assert_eq!(s.run(&["kill", &id]).status.code(), Some(0));
    s.wait_state(&id, "killed").await;

    // Piped into a reader that stops early (`| head -1`): run ends quietly by SIGPIPE, as a
    // Unix tool does, and the job goes on.
    let (mut child, out) = start_forever(&s, &[]);
    let id = newest_job(&s, "forever").await;
    drop(out);
    let status = wait_status(&mut child);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigpipe()), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(s.job_state(&id).await, "running");
    assert_eq!(s.run(&["kill", &id]).status.code(), Some(0));
    s.wait_state(&id, "killed").await;
    // A table too: `ps --all` into a closed pipe neither panics nor says anything.
    let mut ps = s
        .cli(&["ps", "--all"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(ps.stdout.take());
    let status = wait_status(&mut ps);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut ps.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.is_empty(), "{status:?}: {err}");
    assert!(
        status.success() || status.signal() == Some(libc_sigpipe()),
        "{status:?}"
    );
}

fn libc_sigpipe() -> i32 {
    Signal::SIGPIPE as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_saves_a_private_file_that_later_commands_use() {
    let s = stack();
    let file = s.dir.path().join("login").join("cli.toml");
    let mut login = Command::new(env!("CARGO_BIN_EXE_taskwire"));
    let out = login
        .args(["login", "--url", &s.url()])
        .env_remove("TASKWIRE_URL")
        .env_remove("TASKWIRE_TOKEN")
        .env("TASKWIRE_CLI_CONFIG", &file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = out;
    out.stdin
        .as_mut()
        .unwrap()
        .write_all(format!("{}\n", s.up.token).as_bytes())
        .unwrap();
    let res = out.wait_with_output().unwrap();
    assert!(res.status.success(), "{}", text(&res.stderr));

    // At a terminal the token typed is not shown.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = || Stdio::from(pty.slave.try_clone().unwrap());
    let mut at_tty = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["login", "--url", &s.url()])
        .env_remove("TASKWIRE_URL")
        .env_remove("TASKWIRE_TOKEN")
        .env("TASKWIRE_CLI_CONFIG", &file)
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    // Type only once asked, as a person would.
    let mut screen = until_prompt(&mut master, &at_tty);
    // A typo taken back with the erase key (two bytes of one character, then a letter).
    master
        .write_all(format!("é\x7fx\x7f{}\n", s.up.token).as_bytes())
        .unwrap();
    // Until the terminal closes with the program (EIO once no one holds it open).
    let _ = std::io::Read::read_to_end(&mut master, &mut screen);
    assert!(at_tty.wait().unwrap().success(), "{}", text(&screen));
    let screen = text(&screen);
    assert!(screen.contains("logged in"), "{screen}");
    assert!(
        !screen.contains(&s.up.token),
        "the token was echoed: {screen}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let who = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["whoami", "-o", "json"])
        .env_remove("TASKWIRE_URL")
        .env_remove("TASKWIRE_TOKEN")
        .env("TASKWIRE_CLI_CONFIG", &file)
        .output()
        .unwrap();
    assert!(who.status.success(), "{}", text(&who.stderr));
    let me: Value = serde_json::from_slice(&who.stdout).unwrap();
    assert_eq!(me["user"], "admin");
    // The saved token goes only to the server it was saved for.
    let elsewhere = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["whoami", "--url", "http://127.0.0.1:9"])
        .env_remove("TASKWIRE_URL")
        .env_remove("TASKWIRE_TOKEN")
        .env("TASKWIRE_CLI_CONFIG", &file)
        .output()
        .unwrap();
    assert_eq!(elsewhere.status.code(), Some(1));
    assert!(
        text(&elsewhere.stderr).contains("no API token for http://127.0.0.1:9"),
        "{}",
        text(&elsewhere.stderr)
    );
    // Ctrl-C at the prompt ends it with the terminal as it was (echo on) and saves nothing.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = || Stdio::from(pty.slave.try_clone().unwrap());
    let cancelled = s.dir.path().join("cancelled.toml");
    let mut at_tty = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["login", "--url", &s.url()])
        .env_remove("TASKWIRE_URL")
        .env_remove("TASKWIRE_TOKEN")
        .env("TASKWIRE_CLI_CONFIG", &cancelled)
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let screen = until_prompt(&mut master, &at_tty);
    master.write_all(b"tw_half\x03").unwrap();
    let status = wait_status(&mut at_tty);
    assert_eq!(status.code(), Some(130), "{}", text(&screen));
    let termios = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    assert!(
        termios
            .local_flags
            .contains(nix::sys::termios::LocalFlags::ECHO),
        "echo left off"
    );
    assert!(!cancelled.exists());

    // A wrong token is refused and not saved.
    let bad = Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["login", "--url", &s.url(), "--token", "tw_wrong"])
        .env("TASKWIRE_CLI_CONFIG", s.dir.path().join("other.toml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(!s.dir.path().join("other.toml").exists());
}

/// What the program wrote to its terminal up to its `token: ` prompt. A program that never
/// asks is killed after a minute, which ends the read (and the test) instead of hanging it.
fn until_prompt(master: &mut std::fs::File, child: &std::process::Child) -> Vec<u8> {
    let pid = Pid::from_raw(child.id() as i32);
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = asked.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        if !flag.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = kill(pid, Signal::SIGKILL);
        }
    });
    let mut screen = Vec::new();
    let mut byte = [0u8; 1];
    while !screen.ends_with(b"token: ") {
        let n = std::io::Read::read(master, &mut byte).unwrap_or(0);
        assert_eq!(n, 1, "no prompt: {}", text(&screen));
        screen.push(byte[0]);
    }
    asked.store(true, std::sync::atomic::Ordering::SeqCst);
    screen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_are_made_listed_fired_paused_and_removed() {
    let s = stack();
    let made = s.json(&[
        "schedule",
        "add",
        "hello",
        "-p",
        "name=Sched",
        "--every",
        "1s",
        "--name",
        "greet",
        "--overlap",
        "allow",
    ]);
    let id = made["id"].as_str().unwrap().to_string();
    assert_eq!(made["state"], "active");
    let ls = text(&s.run(&["schedule", "ls"]).stdout);
    assert!(
        ls.contains("greet") && ls.contains("every 1s") && ls.contains("active"),
        "{ls}"
    );
    // `taskwire up` runs a scheduler: the fires arrive and make jobs.
    let hist = s
        .json_when(&["schedule", "history", &id[..8]], |v| {
            v["fires"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["state"] == "submitted")
                .count()
                >= 2
        })
        .await;
    let job = hist["fires"][0]["job_id"].as_str().unwrap().to_string();
    s.wait_state(&job, "succeeded").await;
    assert_eq!(text(&s.run(&["logs", &job]).stdout), "Hello, Sched!\n");
    let human = text(&s.run(&["schedule", "history", &id]).stdout);
    assert!(
        human.contains("submitted") && human.contains(&job),
        "{human}"
    );
    let paused = text(&s.run(&["schedule", "pause", &id]).stdout);
    assert!(paused.contains("paused"), "{paused}");
    assert_eq!(s.json(&["schedule", "show", &id])["state"], "paused");
    assert_eq!(s.run(&["schedule", "rm", &id]).status.code(), Some(0));
    assert!(
        s.json(&["schedule", "ls"])["schedules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A schedule needs a time; the error says how to give one.
    let bad = s.run(&["schedule", "add", "hello"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("--every 15m"),
        "{}",
        text(&bad.stderr)
    );
}
