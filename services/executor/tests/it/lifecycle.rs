use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use taskwire_core::wire::{EventKind, InstanceStatus, JobState, OutputStream};

fn alive(pid: i32) -> bool {
    // A zombie waiting for init to reap it is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_ends_the_whole_process_tree() {
    let s = stack().await;
    let pids = s.dir.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let cat = format!(
        r#"
[commands.tree]
shell = true
script = 'trap "" TERM; sleep 300 & echo $! > "$1/a"; (trap "" TERM; sleep 300) & echo $! > "$1/b"; echo started; wait'
args = ["{dir}"]
timeout = "1s"
stop = {{ signal = "SIGTERM", grace = "300ms" }}
"#,
        dir = pids.display()
    );
    let mut e = s.executor("tree", &cat, |_| {}).await;
    let job = s.enqueue("tree", json!({})).await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::TimedOut);
    assert_eq!(r.error.as_deref(), Some("timed out after 1s"));
    for f in ["a", "b"] {
        let pid: i32 = std::fs::read_to_string(pids.join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(pid), "child {f} (pid {pid}) survived the timeout");
    }
    let system = String::from_utf8(s.stream_bytes(&job, OutputStream::System).await).unwrap();
    assert!(system.contains("timed out after 1s"), "{system}");
    assert!(system.contains("sending SIGTERM"), "{system}");
    assert!(
        system.contains("sending SIGKILL"),
        "the shell ignores TERM: {system}"
    );
    assert_eq!(
        s.stream_bytes(&job, OutputStream::Stdout).await,
        b"started\n"
    );
    match s.exited(&job).await.kind {
        EventKind::Exited { tree, signal, .. } => {
            assert_eq!(tree.survivors, 0);
            assert_eq!(signal.as_deref(), Some("SIGKILL"));
        }
        _ => unreachable!(),
    }
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_running_jobs_while_another_executor_takes_the_queue() {
    let s = stack().await;
    let cat = catalog(s.dir.path());
    let mut first = s.executor("first", &cat, |c| c.slots = 1).await;
    let flag = s.dir.path().join("drain-go");
    let long = s
        .enqueue("wait_file", json!({"path": flag.display().to_string()}))
        .await;
    s.wait_state(&long, JobState::Running).await;
    let mut queued = Vec::new();
    for i in 0..5 {
        queued.push(s.enqueue("echo", json!({"text": format!("q{i}")})).await);
    }
    let first_guid = first.guid;
    let exec = first.exec.take().unwrap();
    let draining = tokio::spawn(exec.drain());
    eventually(
        "first shows draining",
        Duration::from_secs(10),
        async || {
            s.instance(&first_guid)
                .await
                .is_some_and(|i| i.status == InstanceStatus::Draining)
        },
    )
    .await;
    let mut second = s.executor("second", &cat, |_| {}).await;
    for j in &queued {
        let r = s.wait_terminal(j, Duration::from_secs(30)).await;
        assert_eq!(r.state, JobState::Succeeded);
        assert_eq!(
            r.instance,
            Some(second.guid),
            "queued jobs go to the serving instance"
        );
    }
    assert_eq!(
        s.record(&long).await.state,
        JobState::Running,
        "drain waits for running jobs"
    );
    assert!(!draining.is_finished());
    std::fs::write(&flag, "").unwrap();
    draining.await.unwrap().unwrap();
    let r = s.record(&long).await;
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(r.instance, Some(first_guid));
    assert!(s.instance(&first_guid).await.is_none());
    second.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_stops_what_is_still_running() {
    let s = stack().await;
    let mut e = s
        .executor("dt", &catalog(s.dir.path()), |c| {
            c.drain_timeout = Duration::from_millis(300)
        })
        .await;
    let job = s.enqueue("sleep", json!({"secs": 300})).await;
    s.wait_state(&job, JobState::Running).await;
    e.drain().await;
    let r = s.record(&job).await;
    assert_eq!(r.state, JobState::Stopped);
    assert_eq!(r.signal.as_deref(), Some("SIGTERM"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_start_fails_with_the_reason() {
    let s = stack().await;
    let cat = "[commands.ghost]\nprogram = \"/nonexistent/ghost\"\n";
    let mut e = s.executor("ghost", cat, |_| {}).await;
    let job = s.enqueue("ghost", json!({})).await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Failed);
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .starts_with("spawn failed: "),
        "{:?}",
        r.error
    );
    let ev = s.events(&job).await;
    assert!(
        ev.iter()
            .any(|e| matches!(e.kind, EventKind::SpawnFailed { .. }))
    );
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_escapee_is_reached_through_the_cgroup() {
    let s = stack().await;
    let pids = s.dir.path().join("escape");
    std::fs::create_dir_all(&pids).unwrap();
    let cat = format!(
        r#"
[commands.escape]
shell = true
script = 'setsid sleep 300 & echo $! > "$1/escapee"; echo started; sleep 300'
args = ["{dir}"]
timeout = "1s"
stop = {{ signal = "SIGTERM", grace = "200ms" }}
"#,
        dir = pids.display()
    );
    let mut e = s.executor("escape", &cat, |_| {}).await;
    let job = s.enqueue("escape", json!({})).await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::TimedOut);
    let pid: i32 = std::fs::read_to_string(pids.join("escapee"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    match s.exited(&job).await.kind {
        EventKind::Exited { tree, .. } => match tree.mode {
            taskwire_core::wire::TreeMode::Cgroup => {
                assert!(
                    !alive(pid),
                    "the cgroup reaches a process that left the group"
                );
                assert_eq!(tree.survivors, 0);
            }
            taskwire_core::wire::TreeMode::ProcessGroup => {
                // Without a cgroup the escapee is out of reach, and the event says how the
                // tree was contained. Clean up after the test.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        },
        _ => unreachable!(),
    }
    e.drain().await;
}
