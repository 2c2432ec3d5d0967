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

/// The de-duplication id of chunk `seq` of `job` published by `instance`: a republished chunk
/// is stored once, and no other instance can take its id first.
pub fn chunk_msg_id(instance: &uuid::Uuid, job: &uuid::Uuid, seq: u64) -> String {
    format!("{instance}:{job}:{seq}")
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
        let inst = uuid::Uuid::parse_str("6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f").unwrap();
        assert_eq!(
            chunk_msg_id(&inst, &job, 12),
            "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f:0190f5c2-7d1e-7a3b-9c4d-5e6f7a8b9c0d:12"
        );
    }
}
