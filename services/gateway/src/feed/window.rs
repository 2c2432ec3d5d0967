//! The most recent chunks of one job's output, bounded by bytes: what every live viewer reads
//! from shared memory. A viewer further back than the window reads from the stream itself
//! (`reader`), so the window never grows with the job's output.

use super::Chunk;
use std::collections::VecDeque;

/// Where a sequence stands relative to the window.
#[derive(Debug)]
pub enum Lookup {
    /// Older than the oldest chunk held: read it from the stream.
    Behind,
    /// Held.
    Held(Chunk),
    /// Not arrived yet.
    NotYet,
}

#[derive(Debug)]
pub struct Window {
    /// Each chunk with the bytes pushed before it (so the bytes from any chunk on are a
    /// subtraction).
    chunks: VecDeque<(Chunk, u64)>,
    /// Sequence of the oldest chunk held (the next to arrive when none is held).
    first: u64,
    bytes: usize,
    /// Bytes of every chunk ever pushed.
    pushed: u64,
    limit: usize,
}

impl Window {
    /// An empty window holding at most `limit` bytes (and always the latest chunk).
    pub fn new(limit: usize) -> Self {
        Self {
            chunks: VecDeque::new(),
            first: 1,
            bytes: 0,
            pushed: 0,
            limit,
        }
    }

    /// Sequence of the next chunk to arrive.
    pub fn next_seq(&self) -> u64 {
        self.first + self.chunks.len() as u64
    }

    /// Adds the next chunk in order (its `seq` is [`Window::next_seq`]), dropping the oldest
    /// while over the limit.
    pub fn push(&mut self, chunk: Chunk) {
        debug_assert_eq!(chunk.seq, self.next_seq());
        let size = chunk.held_bytes();
        self.chunks.push_back((chunk, self.pushed));
        self.bytes += size;
        self.pushed += size as u64;
        while self.bytes > self.limit && self.chunks.len() > 1 {
            if let Some((old, _)) = self.chunks.pop_front() {
                self.bytes -= old.held_bytes();
                self.first += 1;
            }
        }
    }

    /// Bytes held from chunk `seq` on (all held when `seq` fell out, none when it has not
    /// arrived).
    pub fn bytes_from(&self, seq: u64) -> usize {
        if seq < self.first {
            return self.bytes;
        }
        match self.chunks.get((seq - self.first) as usize) {
            Some((_, before)) => (self.pushed - before) as usize,
            None => 0,
        }
    }

    /// The most bytes it holds.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Chunk `seq`, if held.
    pub fn get(&self, seq: u64) -> Lookup {
        if seq < self.first {
            return Lookup::Behind;
        }
        match self.chunks.get((seq - self.first) as usize) {
            Some((c, _)) => Lookup::Held(c.clone()),
            None => Lookup::NotYet,
        }
    }

    /// Bytes of output held.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskwire_core::wire::OutputStream;
    use uuid::Uuid;

    fn chunk(seq: u64, len: usize) -> Chunk {
        Chunk::new(&Uuid::nil(), seq, OutputStream::Stdout, &vec![b'x'; len])
    }

    #[test]
    fn holds_at_most_its_limit_and_says_what_fell_out() {
        let mut w = Window::new(1000);
        for seq in 1..=100 {
            w.push(chunk(seq, 300));
            assert!(
                w.held_bytes() <= 1000,
                "seq {seq}: {} bytes",
                w.held_bytes()
            );
        }
        assert_eq!(w.next_seq(), 101);
        assert!(matches!(w.get(97), Lookup::Behind));
        assert!(matches!(w.get(98), Lookup::Held(c) if c.seq == 98));
        assert!(matches!(w.get(100), Lookup::Held(c) if c.seq == 100));
        assert!(matches!(w.get(101), Lookup::NotYet));
    }

    #[test]
    fn counts_the_bytes_from_any_chunk_on() {
        let mut w = Window::new(1000);
        for seq in 1..=10 {
            w.push(chunk(seq, 300));
        }
        // 8, 9 and 10 held (each chunk's binary frame is its data and a header)
        let one = w.held_bytes() / 3;
        assert_eq!(w.bytes_from(10), one);
        assert_eq!(w.bytes_from(9), 2 * one);
        assert_eq!(w.bytes_from(8), 3 * one);
        assert_eq!(
            w.bytes_from(2),
            w.held_bytes(),
            "fell out: all held are ahead of it"
        );
        assert_eq!(w.bytes_from(11), 0, "not arrived");
    }

    #[test]
    fn always_keeps_the_latest_chunk() {
        let mut w = Window::new(10);
        w.push(chunk(1, 500));
        assert!(matches!(w.get(1), Lookup::Held(_)));
        w.push(chunk(2, 500));
        assert!(matches!(w.get(1), Lookup::Behind));
        assert!(matches!(w.get(2), Lookup::Held(_)));
    }
}
