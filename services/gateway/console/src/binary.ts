// Binary chunk frames (protocol.md, "Binary chunk frames"): a socket opened with the
// subprotocol `taskwire.binary` gets each output chunk as a binary message, the raw bytes
// after a 26-byte header (kind 1, stream, job id, seq), with no base64 to decode.

import type { OutputChunk } from './types';

export const BINARY_PROTOCOL = 'taskwire.binary';
const HEADER = 26;
const STREAMS = ['stdout', 'stderr', 'system'] as const;

function hex(b: Uint8Array, from: number, to: number): string {
  let s = '';
  for (let i = from; i < to; i++) s += b[i].toString(16).padStart(2, '0');
  return s;
}

/** The bytes of a JSON chunk frame's base64 `data`. */
export function decodeBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** The chunk in a binary frame, or null for a frame of another kind (skip it). */
export function decodeBinaryChunk(buf: ArrayBuffer): OutputChunk | null {
  const b = new Uint8Array(buf);
  if (b.length < HEADER || b[0] !== 1) return null;
  const stream = STREAMS[b[1]];
  if (stream === undefined) return null;
  const jobId = `${hex(b, 2, 6)}-${hex(b, 6, 8)}-${hex(b, 8, 10)}-${hex(b, 10, 12)}-${hex(b, 12, 18)}`;
  const seq = Number(new DataView(buf).getBigUint64(18));
  return { job_id: jobId, seq, stream, bytes: b.subarray(HEADER) };
}
