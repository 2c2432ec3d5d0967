//! Output chunks: subject `tw.out.<job_id>`, the raw bytes as payload, and headers `Tw-Seq`
//! (1-based, gapless per job) and `Tw-Stream`. The payload is never re-encoded, so binary
//! output and invalid UTF-8 survive byte for byte.

use serde::{Deserialize, Serialize};

/// Largest chunk payload an executor publishes.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Which stream a chunk came from. `system` lines are written by taskwire itself (output cap
/// reached, who stopped the job, ...), never by the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    Stdout,
    Stderr,
    System,
}

impl OutputStream {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
            OutputStream::System => "system",
        }
    }

    /// Parses a `Tw-Stream` header value.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "stdout" => Some(OutputStream::Stdout),
            "stderr" => Some(OutputStream::Stderr),
            "system" => Some(OutputStream::System),
            _ => None,
        }
    }
}

/// The de-duplication id of chunk `seq` of `job`: a republished chunk is stored once.
pub fn chunk_msg_id(job: &uuid::Uuid, seq: u64) -> String {
    format!("{job}:{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_pinned() {
        for (s, name) in [
            (OutputStream::Stdout, "stdout"),
            (OutputStream::Stderr, "stderr"),
            (OutputStream::System, "system"),
        ] {
            assert_eq!(s.as_str(), name);
            assert_eq!(OutputStream::parse(name), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(name));
        }
        assert_eq!(OutputStream::parse("STDOUT"), None);
    }

    #[test]
    fn chunk_ids_are_pinned() {
        let job = uuid::Uuid::parse_str("0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d").unwrap();
        assert_eq!(
            chunk_msg_id(&job, 12),
            "0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d:12"
        );
    }
}
