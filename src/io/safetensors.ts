// The safetensors format: u64 little-endian header length, a JSON header (dtype, shape, data_offsets and an
// optional __metadata__ of strings), padded with spaces to 8 bytes, then the tensors' bytes back to back.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { native } from '../torch/native.js';
import { Tensor, tidy } from '../torch/index.js';
import { dtypeCode, elementSize, type DType } from '../torch/dtype.js';
import { writeAll, writeFileAtomic } from './atomic.js';

/** Bytes copied out of a tensor at a time when writing: the most a save holds beside the tensors themselves. */
const CHUNK_BYTES = 8 * 2 ** 20;

const TO_ST: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  int32: 'I32',
  int16: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const FROM_ST = new Map<string, DType>(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));

/**
 * Metadata key of the SHA-256 of all tensor bytes in file order, written by {@link saveSafetensors} and checked
 * on load, so that bit rot is caught and not only truncation. Other readers ignore it.
 */
export const CHECKSUM_KEY = 'tensors_sha256';

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface SafetensorsFile {
  /** Tensors in file order. */
  tensors: Map<string, Tensor>;
  /** The header's __metadata__ (string values), empty when absent. */
  metadata: Record<string, string>;
}

/**
 * Writes tensors (CPU copies are taken of others) and string metadata atomically to `path`, with the checksum
 * of the tensor bytes under {@link CHECKSUM_KEY}. One tensor's bytes are held at a time: the checksum goes into
 * a placeholder of its own length at the head of the header once the data are written.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const { [CHECKSUM_KEY]: _stale, ...rest } = metadata;
  // Written out by hand so that the checksum is the header's first value, at a known byte offset.
  const prefix = `{"__metadata__":{"${CHECKSUM_KEY}":"`;
  const meta = JSON.stringify(rest);
  const parts = [`${prefix}${'0'.repeat(64)}"${meta === '{}' ? '}' : `,${meta.slice(1)}`}`];
  let offset = 0;
  for (const [name, t] of entries) {
    if (name === '__metadata__')
      throw new Error(`${path}: a tensor cannot be named __metadata__ in a safetensors file`);
    const n = t.numel() * elementSize(t.dtype);
    const entry: HeaderEntry = { dtype: TO_ST[t.dtype], shape: t.shape, data_offsets: [offset, offset + n] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offset += n;
  }
  let json = `${parts.join(',')}}`;
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const hbuf = Buffer.from(json);
  const checksumAt = 8 + Buffer.byteLength(prefix);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hbuf.length));
  writeFileAtomic(path, (fd) => {
    writeAll(fd, len);
    writeAll(fd, hbuf);
    const hash = createHash('sha256');
    const scratch = Buffer.allocUnsafe(CHUNK_BYTES);
    for (const [, t] of entries) {
      tidy(() => {
        const flat = t.detach().to('cpu').contiguous().flatten();
        const per = elementSize(t.dtype);
        const step = Math.max(1, Math.floor(CHUNK_BYTES / per));
        for (let at = 0; at < flat.numel(); at += step) {
          const k = Math.min(step, flat.numel() - at);
          const part = flat.narrow(0, at, k);
          const b = scratch.subarray(0, k * per);
          part.copyToArray(b);
          part.dispose();
          hash.update(b);
          writeAll(fd, b);
        }
        return undefined;
      });
    }
    const hex = Buffer.from(hash.digest('hex'));
    if (writeSync(fd, hex, 0, hex.length, checksumAt) !== hex.length)
      throw new Error(`${path}: short write of the checksum`);
  });
}

function readExact(fd: number, n: number, pos: number, path: string): Buffer {
  const b = Buffer.allocUnsafe(n);
  let got = 0;
  while (got < n) {
    const r = readSync(fd, b, got, n - got, pos + got);
    if (r === 0) throw new Error(`${path}: file ends early (truncated safetensors file)`);
    got += r;
  }
  return b;
}

/** Reads a safetensors file into CPU tensors. Each tensor is read on its own, so files of several GB work. */
export function loadSafetensors(path: string): SafetensorsFile {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new Error(`${path}: not a safetensors file (${size} bytes)`);
    const hlen = Number(readExact(fd, 8, 0, path).readBigUInt64LE());
    if (hlen > size - 8 || hlen > 100_000_000)
      throw new Error(`${path}: not a safetensors file (header length ${hlen} exceeds the file)`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(readExact(fd, hlen, 8, path).toString('utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${path}: safetensors header is not valid JSON (${(e as Error).message})`, { cause: e });
    }
    const base = 8 + hlen;
    const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
    const tensors = new Map<string, Tensor>();
    const hash = metadata[CHECKSUM_KEY] ? createHash('sha256') : null;
    // File order (by offset): JSON objects put integer-like names first, whatever order they were written in.
    const entries = Object.entries(header).filter(([name]) => name !== '__metadata__') as [string, HeaderEntry][];
    entries.sort((x, y) => (x[1].data_offsets?.[0] ?? 0) - (y[1].data_offsets?.[0] ?? 0));
    for (const [name, e] of entries) {
      const dt = FROM_ST.get(e.dtype);
      if (!dt)
        throw new Error(`${path}: tensor '${name}' has dtype ${e.dtype}; supported: ${[...FROM_ST.keys()].join(', ')}`);
      const [b, en] = e.data_offsets;
      const numel = e.shape.reduce((a, x) => a * x, 1);
      if (en - b !== numel * elementSize(dt) || base + en > size) {
        throw new Error(
          `${path}: tensor '${name}' offsets [${b}, ${en}] do not fit its shape [${e.shape}] ${e.dtype} or the file size`,
        );
      }
      const bytes = readExact(fd, en - b, base + b, path);
      hash?.update(bytes);
      tensors.set(name, new Tensor(native.fromBuffer(bytes, e.shape, dtypeCode(dt))));
    }
    if (hash && hash.digest('hex') !== metadata[CHECKSUM_KEY]) {
      for (const t of tensors.values()) t.dispose();
      throw new Error(
        `${path}: damaged: the tensor bytes do not match the SHA-256 recorded when the file was written (bit rot or a bad copy)`,
      );
    }
    const { [CHECKSUM_KEY]: _sum, ...userMetadata } = metadata;
    return { tensors, metadata: userMetadata };
  } finally {
    closeSync(fd);
  }
}
