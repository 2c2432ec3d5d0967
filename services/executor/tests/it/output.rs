use crate::helpers::*;
use serde_json::json;
use std::time::Duration;
use taskwire_core::wire::{EventKind, JobState, OutputStream};

const OUT_CATALOG: &str = r#"
[commands.cat]
program = "/bin/cat"
args = ["{path}"]
[[commands.cat.params]]
name = "path"
type = "string"
required = true

[commands.binary]
shell = true
script = 'printf "\377\376abc\n"; printf "err\200\n" >&2; printf "\000\001tail"'

[commands.fail3]
shell = true
script = 'echo "to stderr" >&2; exit 3'

[commands.result]
shell = true
script = 'echo "{\"rows\": 5}" > "$TASKWIRE_RESULT_FILE"; echo log'

[commands.bigresult]
shell = true
script = 'head -c 100000 /dev/zero | tr "\000" x > "$TASKWIRE_RESULT_FILE"'

[commands.log]
program = "/usr/bin/seq"
args = ["1", "300000"]

[commands.flood]
program = "/usr/bin/head"
args = ["-c", "5000", "/dev/zero"]
output_cap = "1KiB"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_arrive_complete_and_in_order() {
    let s = stack().await;
    let mut e = s.executor("big", OUT_CATALOG, |_| {}).await;
    // Pseudo-random, incompressible, with every byte value: a reordering or loss shows.
    let mut data = vec![0u8; 50 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    let path = s.dir.path().join("big.bin");
    std::fs::write(&path, &data).unwrap();
    let job = s
        .enqueue("cat", json!({"path": path.display().to_string()}))
        .await;
    let r = s.wait_terminal(&job, Duration::from_secs(120)).await;
    assert_eq!(r.state, JobState::Succeeded, "{:?}", r.error);
    let out = s.stream_bytes(&job, OutputStream::Stdout).await;
    assert_eq!(out.len(), data.len());
    assert!(
        out == data,
        "stored output differs from what the process wrote"
    );
    match s.exited(&job).await.kind {
        EventKind::Exited {
            output_bytes,
            output_truncated,
            ..
        } => {
            assert_eq!(output_bytes, data.len() as u64);
            assert!(!output_truncated);
        }
        _ => unreachable!(),
    }
    e.drain().await;
}

/// A log (text that compresses) crosses NATS as LZ4 blocks, `Tw-Encoding: lz4`, and reads back
/// byte for byte; with `output_compression = "off"` every chunk is the bytes as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_is_published_compressed_and_reads_back_exactly() {
    use taskwire_core::wire::output::ChunkEncoding;
    let s = stack().await;
    let expected: Vec<u8> = (1..=300_000)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    for compression in [
        taskwire_executor::OutputCompression::Lz4,
        taskwire_executor::OutputCompression::Off,
    ] {
        let mut e = s
            .executor(&format!("log-{compression:?}"), OUT_CATALOG, |c| {
                c.output_compression = compression;
            })
            .await;
        let job = s.enqueue("log", json!({})).await;
        let r = s.wait_terminal(&job, Duration::from_secs(60)).await;
        assert_eq!(r.state, JobState::Succeeded, "{:?}", r.error);
        let wire = s.wire_chunks(&job).await;
        let sent: usize = wire.iter().map(|c| c.payload.len()).sum();
        let packed = wire
            .iter()
            .filter(|c| c.encoding == ChunkEncoding::Lz4)
            .count();
        if compression == taskwire_executor::OutputCompression::Lz4 {
            assert!(packed > 0, "no chunk of {} was compressed", wire.len());
            // Numbers compress about 1.6-fold with LZ4 (text logs 3 to 10-fold).
            assert!(
                sent < expected.len() * 3 / 4,
                "{sent} bytes crossed NATS for a {} byte log",
                expected.len()
            );
        } else {
            assert_eq!(packed, 0, "compression is off");
            assert_eq!(sent, expected.len());
        }
        let out = s.stream_bytes(&job, OutputStream::Stdout).await;
        assert!(
            out == expected,
            "{compression:?}: the log read back differs"
        );
        match s.exited(&job).await.kind {
            EventKind::Exited { output_bytes, .. } => {
                assert_eq!(output_bytes, expected.len() as u64)
            }
            _ => unreachable!(),
        }
        e.drain().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_output_survives_and_streams_stay_apart() {
    let s = stack().await;
    let mut e = s.executor("bin", OUT_CATALOG, |_| {}).await;
    let job = s.enqueue("binary", json!({})).await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(
        s.stream_bytes(&job, OutputStream::Stdout).await,
        b"\xff\xfeabc\n\x00\x01tail"
    );
    assert_eq!(
        s.stream_bytes(&job, OutputStream::Stderr).await,
        b"err\x80\n"
    );
    assert!(s.stream_bytes(&job, OutputStream::System).await.is_empty());
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_stderr_and_result_are_reported() {
    let s = stack().await;
    let mut e = s.executor("codes", OUT_CATALOG, |_| {}).await;
    let failing = s.enqueue("fail3", json!({})).await;
    let with_result = s.enqueue("result", json!({})).await;
    let r = s.wait_terminal(&failing, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Failed);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.error.as_deref(), Some("exited with code 3"));
    assert_eq!(
        s.stream_bytes(&failing, OutputStream::Stderr).await,
        b"to stderr\n"
    );

    let r = s.wait_terminal(&with_result, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(
        s.stream_bytes(&with_result, OutputStream::Stdout).await,
        b"log\n"
    );
    match s.exited(&with_result).await.kind {
        EventKind::Exited {
            result,
            exit_code,
            duration_ms,
            ..
        } => {
            assert_eq!(result, Some(json!({"rows": 5})));
            assert_eq!(exit_code, Some(0));
            assert!(duration_ms < 20_000);
        }
        _ => unreachable!(),
    }
    // A result too large for an event is refused with a reason, never left to block the job.
    let big = s.enqueue("bigresult", json!({})).await;
    let r = s.wait_terminal(&big, Duration::from_secs(20)).await;
    assert_eq!(r.state, JobState::Succeeded);
    assert!(
        r.error
            .unwrap_or_default()
            .contains("larger than 65536 bytes")
    );
    let kinds: Vec<&'static str> = s
        .events(&with_result)
        .await
        .iter()
        .map(|e| taskwire_core::jobs::event_name(&e.kind))
        .collect();
    assert_eq!(kinds, ["queued", "started", "exited"]);
    e.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cap_cuts_the_stored_log_and_says_so() {
    let s = stack().await;
    let mut e = s.executor("cap", OUT_CATALOG, |_| {}).await;
    let job = s.enqueue("flood", json!({})).await;
    let r = s.wait_terminal(&job, Duration::from_secs(20)).await;
    assert_eq!(
        r.state,
        JobState::Succeeded,
        "the job itself is not harmed by the cap"
    );
    assert_eq!(
        s.stream_bytes(&job, OutputStream::Stdout).await,
        vec![0u8; 1024]
    );
    let system = String::from_utf8(s.stream_bytes(&job, OutputStream::System).await).unwrap();
    assert!(
        system.contains("output cap of 1024 bytes reached"),
        "{system}"
    );
    match s.exited(&job).await.kind {
        EventKind::Exited {
            output_bytes,
            output_truncated,
            ..
        } => {
            assert_eq!(output_bytes, 5000);
            assert!(output_truncated);
        }
        _ => unreachable!(),
    }
    e.drain().await;
}
