//! Binary chunk frames: output chunks as WebSocket binary messages, raw bytes after a fixed
//! 26-byte header, for clients that ask for them with the subprotocol
//! [`WS_BINARY_PROTOCOL`] (`taskwire.binary`). Every other frame (`end`, `slow`, `error`,
//! answers) stays a JSON text frame; a client that offers only `taskwire` gets JSON chunks
//! (`data` in base64) as before.
//!
//! Layout, all integers big-endian:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 1 | kind: `1` = chunk (other values are reserved: skip such a frame) |
//! | 1 | 1 | stream: `0` stdout, `1` stderr, `2` system |
//! | 2 | 16 | job id (the UUID's 16 bytes) |
//! | 18 | 8 | seq (u64) |
//! | 26 | rest | the chunk's bytes, as the process wrote them |

use crate::wire::output::OutputStream;
use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

/// The subprotocol that asks for binary chunk frames.
pub const WS_BINARY_PROTOCOL: &str = "taskwire.binary";
/// Kind byte of a chunk frame.
pub const KIND_CHUNK: u8 = 1;
/// Bytes before the chunk's data.
pub const HEADER_LEN: usize = 26;

/// One chunk as a binary frame's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryChunk {
    pub job_id: Uuid,
    pub seq: u64,
    pub stream: OutputStream,
    pub data: Bytes,
}

/// Why a binary frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryFrameError {
    /// Shorter than the header.
    Short(usize),
    /// A kind this client does not know (skip the frame).
    UnknownKind(u8),
    /// A stream byte that names no stream.
    UnknownStream(u8),
}

impl std::fmt::Display for BinaryFrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Short(n) => write!(f, "binary frame of {n} bytes is shorter than its header"),
            Self::UnknownKind(k) => write!(f, "binary frame of unknown kind {k}"),
            Self::UnknownStream(s) => write!(f, "binary frame names unknown stream {s}"),
        }
    }
}

impl std::error::Error for BinaryFrameError {}

fn stream_byte(s: OutputStream) -> u8 {
    match s {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
        OutputStream::System => 2,
    }
}

/// The whole frame of chunk `seq` of `job_id` (one copy of `data`).
pub fn encode_chunk(job_id: &Uuid, seq: u64, stream: OutputStream, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + data.len());
    b.put_u8(KIND_CHUNK);
    b.put_u8(stream_byte(stream));
    b.put_slice(job_id.as_bytes());
    b.put_u64(seq);
    b.put_slice(data);
    b.freeze()
}

/// Reads a binary frame; the data shares `frame`'s memory.
pub fn decode_chunk(frame: &Bytes) -> Result<BinaryChunk, BinaryFrameError> {
    if frame.len() < HEADER_LEN {
        return Err(BinaryFrameError::Short(frame.len()));
    }
    if frame[0] != KIND_CHUNK {
        return Err(BinaryFrameError::UnknownKind(frame[0]));
    }
    let stream = match frame[1] {
        0 => OutputStream::Stdout,
        1 => OutputStream::Stderr,
        2 => OutputStream::System,
        s => return Err(BinaryFrameError::UnknownStream(s)),
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&frame[2..18]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&frame[18..26]);
    Ok(BinaryChunk {
        job_id: Uuid::from_bytes(id),
        seq: u64::from_be_bytes(seq),
        stream,
        data: frame.slice(HEADER_LEN..),
    })
}

/// The data of an encoded chunk frame (shares its memory).
pub fn data_of(frame: &Bytes) -> Bytes {
    frame.slice(HEADER_LEN.min(frame.len())..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_pinned() {
        let job = Uuid::parse_str("00000000-0000-0000-0000-000000000007").unwrap();
        let f = encode_chunk(&job, 0x0102, OutputStream::Stderr, b"\xffhi");
        let mut want = vec![1u8, 1];
        want.extend_from_slice(job.as_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2]);
        want.extend_from_slice(b"\xffhi");
        assert_eq!(&f[..], &want[..]);
        let c = decode_chunk(&f).unwrap();
        assert_eq!(
            c,
            BinaryChunk {
                job_id: job,
                seq: 0x0102,
                stream: OutputStream::Stderr,
                data: Bytes::from_static(b"\xffhi"),
            }
        );
        assert_eq!(data_of(&f), Bytes::from_static(b"\xffhi"));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        let short = Bytes::from_static(&[1, 0, 0]);
        assert_eq!(decode_chunk(&short), Err(BinaryFrameError::Short(3)));
        let mut f = encode_chunk(&Uuid::nil(), 1, OutputStream::Stdout, b"x").to_vec();
        f[0] = 9;
        assert_eq!(
            decode_chunk(&Bytes::from(f.clone())),
            Err(BinaryFrameError::UnknownKind(9))
        );
        f[0] = 1;
        f[1] = 7;
        assert_eq!(
            decode_chunk(&Bytes::from(f)),
            Err(BinaryFrameError::UnknownStream(7))
        );
    }
}
