//! Hostile parameter values either fail validation with a message naming the parameter and the
//! rule, or arrive as one literal argv element. No shell ever interprets them.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use taskwire_core::wire::{EventKind, JobState, OutputStream, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_payloads_never_run() {
    let s = stack().await;
    let work = s.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let sentinel = work.join("SENTINEL");
    let cat = format!(
        r#"
[commands.echo]
program = "/bin/echo"
args = ["{{text}}"]
workdir = "{work}"
[[commands.echo.params]]
name = "text"
type = "string"
max_len = 131072
required = true

[commands.shell_echo]
shell = true
script = 'printf "%s" "$TASKWIRE_PARAM_TEXT"; printf "|%s" "$1"'
args = ["{{text}}"]
workdir = "{work}"
[[commands.shell_echo.params]]
name = "text"
type = "string"
required = true
"#,
        work = work.display()
    );
    let mut e = s.executor("inj", &cat, |_| {}).await;
    let touch = format!("touch {}", sentinel.display());
    let literal_ok = [
        format!("; {touch}"),
        format!("$({touch})"),
        format!("`{touch}`"),
        format!("x && {touch} || {touch}"),
        format!("'\"; {touch}; echo \""),
        "; rm -rf /".to_string(),
    ];
    for cmd in ["echo", "shell_echo"] {
        for payload in &literal_ok {
            let job = s.enqueue(cmd, json!({"text": payload})).await;
            let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
            assert_eq!(
                r.state,
                JobState::Succeeded,
                "{cmd} {payload:?}: {:?}",
                r.error
            );
            let out = s.stream_bytes(&job, OutputStream::Stdout).await;
            let expected = if cmd == "echo" {
                format!("{payload}\n")
            } else {
                format!("{payload}|{payload}")
            };
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected,
                "one literal element"
            );
        }
    }
    let refused = [
        (json!(format!("a\n{touch}")), "control characters"),
        (json!(format!("a\u{0}{touch}")), "NUL"),
        (json!("-rf"), "start with '-'"),
        (json!("--output=/etc/passwd"), "start with '-'"),
        (json!("x".repeat(10_000)), "at most 256 characters"),
        (json!(["array"]), "must be a string"),
    ];
    for (payload, rule) in refused {
        let job = s.enqueue("shell_echo", json!({"text": payload})).await;
        let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
        assert_eq!(r.state, JobState::Failed);
        let err = r.error.unwrap_or_default();
        assert!(err.starts_with("parameter 'text': "), "{err}");
        assert!(err.contains(rule), "{err}");
        let rejected = s
            .events(&job)
            .await
            .into_iter()
            .any(|e| matches!(e.kind, EventKind::Rejected { .. }));
        assert!(rejected, "a rejected event is published");
    }
    // A 1 MB value is refused before it becomes a job; 200 KB is over the largest max_len an
    // argument can have; 100 KB within it arrives whole as one element.
    let huge = s.spec(
        "echo",
        json!({"text": "y".repeat(1 << 20)}),
        Target::Channel("default".into()),
    );
    let err = s.jobs.submit(huge).await.unwrap_err().to_string();
    assert!(err.contains("more than the 262144 allowed"), "{err}");
    let job = s
        .enqueue("echo", json!({"text": "y".repeat(200_000)}))
        .await;
    let r = s.wait_terminal(&job, Duration::from_secs(30)).await;
    assert_eq!(
        r.error.as_deref(),
        Some("parameter 'text': must be at most 131072 characters")
    );
    let job = s
        .enqueue("echo", json!({"text": "y".repeat(100_000)}))
        .await;
    let r = s.wait_terminal(&job, Duration::from_secs(30)).await;
    assert_eq!(r.state, JobState::Succeeded, "{:?}", r.error);
    assert_eq!(
        s.stream_bytes(&job, OutputStream::Stdout).await.len(),
        100_001
    );

    let unknown = s.enqueue("echo", json!({"text": "a", "extra": "b"})).await;
    let r = s.wait_terminal(&unknown, Duration::from_secs(20)).await;
    assert!(
        r.error
            .unwrap()
            .contains("parameter 'extra': is not a parameter")
    );
    let missing = s.enqueue("nope", json!({})).await;
    let r = s.wait_terminal(&missing, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Failed);
    assert!(r.error.unwrap().contains("not in the catalog"));

    assert!(!sentinel.exists(), "no payload was ever executed");
    e.drain().await;
}
