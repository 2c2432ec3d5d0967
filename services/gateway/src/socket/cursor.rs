//! One viewer's place in a job's feed. Near the live edge it reads the feed's shared window;
//! further back (a late viewer starting at chunk 1, or one that fell behind the window) it
//! reads the stream itself a few chunks at a time until it reaches the window, so a viewer
//! holds no more than that whatever the job writes. A viewer reading the window tells the
//! feed which chunk it needs next (the feed reads on at the pace of its fastest viewer). Once
//! the viewer has caught up with the live edge, falling more than `lag` chunks behind it cuts
//! the viewer off (it may resume from the chunk it was told), so a slow viewer never slows the
//! job, the feed or other viewers.

use crate::feed::reader::{ChunkReader, Until};
use crate::feed::{Chunk, Feed, Lookup, Progress, add_error, end_of};
use std::sync::Arc;
use taskwire_core::wire::api::JobEnd;
use tokio::sync::watch;

/// What a viewer gets next.
#[derive(Debug)]
pub enum Step {
    /// The next chunk to send.
    Chunk(Chunk),
    /// Too far behind the live edge (or its catch-up read failed): cut off; it resumes from
    /// `from_seq`.
    Slow { from_seq: u64 },
    /// Every chunk was sent: how the job ended.
    End(JobEnd),
    /// Nothing new yet: wait for [`Cursor::changed`].
    Wait,
}

/// A viewer's place in one feed.
pub struct Cursor {
    feed: Arc<Feed>,
    progress: watch::Receiver<Progress>,
    /// Sequence of the next chunk to send.
    next: u64,
    /// Caught up with the live edge once: from then on the lag limit applies.
    live: bool,
    lag: u64,
    /// Its own read of the stream while behind the window (or of a replayed log).
    reader: Option<ChunkReader>,
    /// A replayed log's end, once its reader is done.
    replayed: Option<JobEnd>,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("job_id", &self.feed.job_id)
            .field("next", &self.next)
            .field("live", &self.live)
            .field("reading", &self.reader.is_some())
            .finish()
    }
}

impl Cursor {
    /// A cursor at chunk `from_seq` (1 or more) of `feed`.
    pub fn new(feed: Arc<Feed>, from_seq: u64, lag: usize) -> Self {
        Self {
            progress: feed.subscribe(),
            feed,
            next: from_seq.max(1),
            live: false,
            lag: lag as u64,
            reader: None,
            replayed: None,
        }
    }

    /// The sequence of the next chunk to send.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// What to send next. Waits only while reading the stream behind the window.
    pub async fn step(&mut self) -> Step {
        let p = self.progress.borrow_and_update().clone();
        if p.replay {
            return self.replay_step().await;
        }
        if self.next > p.chunks {
            self.live = true;
        }
        if self.next <= p.chunks {
            if self.live && p.chunks + 1 - self.next > self.lag {
                return Step::Slow {
                    from_seq: self.next,
                };
            }
            match self.feed.lookup(self.next) {
                Lookup::Held(c) => {
                    self.reader = None;
                    self.next += 1;
                    self.feed.want(self.next);
                    return Step::Chunk(c);
                }
                Lookup::Behind => return self.catch_up().await,
                Lookup::NotYet => {}
            }
        }
        self.feed.want(self.next);
        match p.done {
            Some(done) if self.next > done.last_seq => Step::End(done),
            _ => Step::Wait,
        }
    }

    /// The next chunk from the stream, for a viewer behind the window.
    async fn catch_up(&mut self) -> Step {
        let read = match self.reader.as_mut() {
            Some(r) => r.next().await,
            None => match {
                tracing::debug!(job = %self.feed.job_id, from = self.next, "a viewer behind the window reads the stream");
                self.open(Until::Known)
            }
            .await
            {
                Ok(r) => self.reader.insert(r).next().await,
                Err(e) => Err(e),
            },
        };
        match read {
            Ok(Some(p)) => {
                if p.seq != self.next {
                    tracing::warn!(job = %self.feed.job_id, want = self.next, got = p.seq, "the stream lacks chunks of a live job");
                }
                self.next = p.seq + 1;
                Step::Chunk(Chunk::new(&self.feed.job_id, p.seq, p.stream, &p.data))
            }
            Ok(None) | Err(_) => {
                if let Err(e) = read {
                    tracing::warn!(job = %self.feed.job_id, error = %e, "a viewer's catch-up read failed");
                }
                self.reader = None;
                Step::Slow {
                    from_seq: self.next,
                }
            }
        }
    }

    /// A finished job whose log is read from the audit store: page by page, then its end.
    async fn replay_step(&mut self) -> Step {
        if let Some(end) = &self.replayed {
            return Step::End(end.clone());
        }
        let Some(record) = self.feed.finished().cloned() else {
            return Step::Wait;
        };
        let read = match self.reader.as_mut() {
            Some(r) => r.next().await,
            None => match self.open(Until::Held).await {
                Ok(r) => self.reader.insert(r).next().await,
                Err(e) => Err(e),
            },
        };
        let mut end = end_of(&record, self.next - 1);
        match read {
            Ok(Some(p)) if p.seq == self.next => {
                self.next += 1;
                return Step::Chunk(Chunk::new(&self.feed.job_id, p.seq, p.stream, &p.data));
            }
            Ok(Some(_)) => {
                let (have, missing) = (self.next - 1, self.next);
                add_error(
                    &mut end,
                    &format!(
                        "its output stops at chunk {have}: the audit store lacks chunk {missing}"
                    ),
                );
            }
            Ok(None) if self.next == 1 && record.started_at.is_some() => add_error(
                &mut end,
                "no output is kept for it (it wrote none, or it expired and no audit store has it)",
            ),
            Ok(None) => {}
            Err(e) => add_error(
                &mut end,
                &format!("its output could not be read ({e}); open it again later"),
            ),
        }
        self.reader = None;
        self.replayed = Some(end.clone());
        Step::End(end)
    }

    /// A reader from the next chunk (holds nothing of `self` across its wait, as a reader is
    /// not `Sync`).
    fn open(&self, until: Until) -> impl Future<Output = Result<ChunkReader, String>> + Send {
        let src = self.feed.source().clone();
        let (job_id, instance, from) = (self.feed.job_id, self.feed.instance(), self.next);
        ChunkReader::open(src, job_id, instance, from, until)
    }

    /// Waits until the feed has more; `false` when the feed is gone.
    pub async fn changed(&mut self) -> bool {
        self.progress.changed().await.is_ok()
    }
}
