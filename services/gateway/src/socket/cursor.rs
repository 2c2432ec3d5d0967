//! One viewer's place in a job's feed. Replaying the past goes at the viewer's pace (it is in
//! shared memory); once the viewer has caught up with the live edge, falling more than `lag`
//! chunks behind it cuts the viewer off (it may resume from the chunk it was told), so a slow
//! viewer never slows the job, the feed or other viewers.

use crate::feed::{Chunk, Feed, Progress};
use std::sync::Arc;
use taskwire_core::wire::api::JobEnd;
use tokio::sync::watch;

/// What a viewer gets next.
#[derive(Debug)]
pub enum Step {
    /// The next chunk to send.
    Chunk(Chunk),
    /// Too far behind the live edge: cut off; it resumes from `from_seq`.
    Slow { from_seq: u64 },
    /// Every chunk was sent: how the job ended.
    End(JobEnd),
    /// Nothing new yet: wait for [`Cursor::changed`].
    Wait,
}

/// A viewer's place in one feed.
#[derive(Debug)]
pub struct Cursor {
    feed: Arc<Feed>,
    progress: watch::Receiver<Progress>,
    /// Index of the next chunk to send (its sequence minus 1).
    next: usize,
    /// Caught up with the live edge once: from then on the lag limit applies.
    live: bool,
    lag: usize,
}

impl Cursor {
    /// A cursor at chunk `from_seq` (1 or more) of `feed`.
    pub fn new(feed: Arc<Feed>, from_seq: u64, lag: usize) -> Self {
        Self {
            progress: feed.subscribe(),
            feed,
            next: usize::try_from(from_seq.max(1) - 1).unwrap_or(usize::MAX),
            live: false,
            lag,
        }
    }

    /// The sequence of the next chunk to send.
    pub fn next_seq(&self) -> u64 {
        self.next as u64 + 1
    }

    /// Whether the viewer has caught up with the live edge (and the lag limit applies).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// What to send next, without waiting.
    pub fn step(&mut self) -> Step {
        let p = self.progress.borrow_and_update().clone();
        if self.next >= p.chunks {
            self.live = true;
        }
        if self.next < p.chunks {
            if self.live && p.chunks - self.next > self.lag {
                return Step::Slow {
                    from_seq: self.next_seq(),
                };
            }
            if let Some(c) = self.feed.chunks_from(self.next, 1).pop() {
                self.next += 1;
                return Step::Chunk(c);
            }
        }
        match p.done {
            Some(done) if self.next as u64 >= done.last_seq => Step::End(done),
            _ => Step::Wait,
        }
    }

    /// Waits until the feed has more; `false` when the feed is gone.
    pub async fn changed(&mut self) -> bool {
        self.progress.changed().await.is_ok()
    }
}
