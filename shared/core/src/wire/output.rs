//! Output chunks: subject `tw.out.<guid>.<job_id>`, headers `Tw-Seq` (1-based, gapless per
//! job), `Tw-Stream` and, on a compressed chunk, `Tw-Encoding: lz4`. The bytes the process
//! wrote are never altered: a chunk is either those bytes as they are or their LZ4 block
//! (4-byte little-endian size, then the block), so binary output and invalid UTF-8 survive
//! byte for byte. Every reader goes through [`WireChunk`].

use crate::error::{Error, Result};
use crate::names::{HDR_ENCODING, HDR_SEQ, HDR_STREAM};
use bytes::Bytes;
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

/// How a chunk's payload holds the process's bytes (`Tw-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkEncoding {
    /// No header: the payload is the bytes as written.
    #[default]
    Raw,
    /// `lz4`: an LZ4 block, prefixed by the bytes' length (`u32`, little endian).
    Lz4,
}

impl ChunkEncoding {
    /// The header value, none for [`ChunkEncoding::Raw`] (and the audit store's `encoding`).
    pub fn as_header(self) -> Option<&'static str> {
        match self {
            ChunkEncoding::Raw => None,
            ChunkEncoding::Lz4 => Some("lz4"),
        }
    }

    /// Parses a `Tw-Encoding` header value (absent: raw). An unknown encoding is an error:
    /// its bytes cannot be read, and passing them on as raw would show garbage.
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("") => Ok(ChunkEncoding::Raw),
            Some("lz4") => Ok(ChunkEncoding::Lz4),
            Some(other) => Err(Error::Chunk(format!(
                "unknown {HDR_ENCODING} '{other}' (this release reads none or 'lz4'); upgrade the reader"
            ))),
        }
    }
}

/// Chunks smaller than this are sent as they are: a line or two does not pay for compressing,
/// and interactive output stays as fast as it can be.
pub const COMPRESS_FROM: usize = 512;

/// The payload for `data`: its LZ4 block when that saves at least an eighth, else the bytes
/// as they are (incompressible output costs one trial compression, never more bytes).
pub fn encode_chunk(data: &Bytes) -> (ChunkEncoding, Bytes) {
    if data.len() < COMPRESS_FROM || data.len() > MAX_CHUNK {
        return (ChunkEncoding::Raw, data.clone());
    }
    let packed = lz4_flex::compress_prepend_size(data);
    if packed.len() <= data.len() - data.len() / 8 {
        (ChunkEncoding::Lz4, Bytes::from(packed))
    } else {
        (ChunkEncoding::Raw, data.clone())
    }
}

/// The bytes the process wrote, from a payload in `encoding`. A compressed chunk claiming more
/// than [`MAX_CHUNK`] bytes is refused before anything is allocated.
pub fn decode_chunk(encoding: ChunkEncoding, payload: &Bytes) -> Result<Bytes> {
    match encoding {
        ChunkEncoding::Raw => Ok(payload.clone()),
        ChunkEncoding::Lz4 => {
            let bad = |why: String| Error::Chunk(format!("an lz4 chunk {why}"));
            let (size, block) = lz4_flex::block::uncompressed_size(payload)
                .map_err(|e| bad(format!("has no length: {e}")))?;
            if size > MAX_CHUNK {
                return Err(bad(format!(
                    "claims {size} bytes, more than the {MAX_CHUNK} of a chunk"
                )));
            }
            let mut out = vec![0u8; size];
            let n = lz4_flex::block::decompress_into(block, &mut out)
                .map_err(|e| bad(format!("is corrupt: {e}")))?;
            if n != size {
                return Err(bad(format!("holds {n} bytes, not the {size} it claims")));
            }
            Ok(Bytes::from(out))
        }
    }
}

/// An output chunk as read from `TW_OUTPUT`: its headers parsed, its payload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireChunk {
    pub seq: u64,
    pub stream: OutputStream,
    pub encoding: ChunkEncoding,
    pub payload: Bytes,
}

impl WireChunk {
    /// Reads the `Tw-Seq`, `Tw-Stream` and `Tw-Encoding` headers of a chunk message.
    pub fn from_message(headers: Option<&async_nats::HeaderMap>, payload: Bytes) -> Result<Self> {
        let bad = |why: String| Error::Chunk(why);
        let h = headers.ok_or_else(|| bad("an output chunk without headers".into()))?;
        let seq = h
            .get(HDR_SEQ)
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .filter(|s| *s >= 1)
            .ok_or_else(|| bad(format!("an output chunk without a valid {HDR_SEQ}")))?;
        let stream = h
            .get(HDR_STREAM)
            .and_then(|v| OutputStream::parse(v.as_str()))
            .ok_or_else(|| bad(format!("output chunk {seq} without a valid {HDR_STREAM}")))?;
        let encoding = ChunkEncoding::parse(h.get(HDR_ENCODING).map(|v| v.as_str()))?;
        Ok(Self {
            seq,
            stream,
            encoding,
            payload,
        })
    }

    /// The bytes the process wrote.
    pub fn data(&self) -> Result<Bytes> {
        decode_chunk(self.encoding, &self.payload)
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
    fn compressible_chunks_are_lz4_and_read_back_byte_for_byte() {
        let text = Bytes::from("2026-12-03 INFO all is well\n".repeat(3000).into_bytes());
        let chunk = text.slice(..MAX_CHUNK);
        let (enc, payload) = encode_chunk(&chunk);
        assert_eq!(enc, ChunkEncoding::Lz4);
        assert!(payload.len() < chunk.len() / 8, "{}", payload.len());
        assert_eq!(decode_chunk(enc, &payload).unwrap(), chunk);
        // The wire format is the LZ4 block with its length in front, as documented.
        assert_eq!(&payload[..4], &(MAX_CHUNK as u32).to_le_bytes());
        assert_eq!(
            lz4_flex::block::decompress(&payload[4..], MAX_CHUNK).unwrap(),
            chunk
        );
    }

    #[test]
    fn small_and_incompressible_chunks_stay_raw() {
        let line = Bytes::from_static(b"hi\n");
        assert_eq!(encode_chunk(&line), (ChunkEncoding::Raw, line.clone()));
        // A pseudo-random chunk (xorshift): LZ4 cannot save an eighth of it.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..MAX_CHUNK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let noise = Bytes::from(noise);
        assert_eq!(encode_chunk(&noise), (ChunkEncoding::Raw, noise.clone()));
    }

    #[test]
    fn bad_payloads_are_refused_with_the_reason() {
        let e = ChunkEncoding::parse(Some("zstd")).unwrap_err().to_string();
        assert!(e.contains("zstd") && e.contains("upgrade"), "{e}");
        // A length beyond a chunk is refused before any allocation.
        let mut bomb = (u32::MAX).to_le_bytes().to_vec();
        bomb.extend_from_slice(&[0x1f; 17]);
        let e = decode_chunk(ChunkEncoding::Lz4, &Bytes::from(bomb))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than"), "{e}");
        let e = decode_chunk(ChunkEncoding::Lz4, &Bytes::from_static(b"\x10\0\0\0\xff"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("corrupt") || e.contains("holds"), "{e}");
        let e = decode_chunk(ChunkEncoding::Lz4, &Bytes::from_static(b"\x01"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no length"), "{e}");
    }

    #[test]
    fn chunk_headers_are_read() {
        let mut h = async_nats::HeaderMap::new();
        h.insert(HDR_SEQ, "7");
        h.insert(HDR_STREAM, "stderr");
        h.insert(HDR_ENCODING, "lz4");
        let c = WireChunk::from_message(Some(&h), Bytes::new()).unwrap();
        assert_eq!(
            (c.seq, c.stream, c.encoding),
            (7, OutputStream::Stderr, ChunkEncoding::Lz4)
        );
        h.insert(HDR_SEQ, "0");
        let e = WireChunk::from_message(Some(&h), Bytes::new()).unwrap_err();
        assert!(e.to_string().contains(HDR_SEQ), "{e}");
        assert!(WireChunk::from_message(None, Bytes::new()).is_err());
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
