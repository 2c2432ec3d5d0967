//! What the audit store gives back is what the process wrote, byte for byte: 50 MB of
//! output with bytes that are not UTF-8, streams kept apart, read back page by page.

use crate::helpers::*;
use std::time::Duration;
use taskwire_core::wire::history::STORE_JOBS_OUTPUT;
use taskwire_core::wire::{OutputPage, OutputStream};
use uuid::Uuid;

const SIZE: usize = 50 * 1024 * 1024;

const CATALOG: &str = r#"
[commands.big]
shell = true
script = 'yes "$(printf "line\377\376 ")" | head -c 52428800; printf "\200tail" >&2'
"#;

async fn read_all(s: &Stack, job: Uuid) -> (Vec<u8>, Vec<u8>, u64) {
    let (mut out, mut err, mut pages) = (Vec::new(), Vec::new(), 0);
    let mut from = 1u64;
    loop {
        let page: OutputPage = unwrap_reply(
            s.ask(
                STORE_JOBS_OUTPUT,
                serde_json::json!({"job_id": job, "from_seq": from}),
            )
            .await,
        );
        pages += 1;
        for c in &page.chunks {
            assert_eq!(c.seq, from, "chunks are gapless and in order");
            from += 1;
            match c.stream {
                OutputStream::Stdout => out.extend_from_slice(&c.data),
                OutputStream::Stderr => err.extend_from_slice(&c.data),
                OutputStream::System => panic!("no system lines expected"),
            }
        }
        match page.next_seq {
            Some(n) => assert_eq!(n, from),
            None => return (out, err, pages),
        }
    }
}

async fn fifty_megabytes(backend: Backend) {
    let s = Stack::new(backend).await;
    let w = s.writer().await;
    let mut exec = s.start_executor(CATALOG).await;
    let db = s.db().await;
    let job = s.enqueue("big", serde_json::json!({})).await;
    eventually(
        "the job's exit stored",
        Duration::from_secs(120),
        async || {
            count(
                &db,
                "executions",
                "state = 'succeeded' AND last_seq IS NOT NULL",
            )
            .await
                == 1
        },
    )
    .await;
    let last = sum_last_seq(&db).await;
    eventually("every chunk stored", Duration::from_secs(120), async || {
        count(&db, "job_output", "").await == last
    })
    .await;

    let (out, err, pages) = read_all(&s, job).await;
    let pattern = b"line\xff\xfe \n";
    assert_eq!(out.len(), SIZE);
    assert!(
        out.chunks(pattern.len()).all(|c| pattern.starts_with(c)),
        "stdout differs from what the process wrote"
    );
    assert_eq!(err, b"\x80tail");
    assert!(pages > 50, "a page stays under the NATS message limit");
    exec.drain().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_come_back_byte_for_byte_from_sqlite() {
    fifty_megabytes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_come_back_byte_for_byte_from_postgres() {
    fifty_megabytes(Backend::Postgres).await;
}
