// Embedding files: `.npy` (float32 [N, D]) with `<name>.paths.jsonl` (one JSON string a line, so that any file
// name round-trips; the older `<name>.paths.txt`, one path a line, is still read) and `<name>.meta.json` beside it,
// `.safetensors` (tensor `embeddings`, metadata `paths` and `embed`), or `.jsonl` (one {"path", "embedding"}
// a line, `<name>.meta.json` beside it). Written in a streaming way (rows go to a temporary file, the final file
// is assembled and renamed at the end) and read in row chunks, so neither side holds the whole matrix.
import { closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, fstatSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { writeAll, writeFileAtomic, writeTextAtomic } from '../io/atomic.js';

/** What produced an embedding file (stored with it, so that queries are embedded the same way). */
export interface EmbeddingMeta {
  /** The checkpoint file, absolute. */
  pretrained?: string;
  feature?: 'backbone' | 'head' | 'regions';
  arch?: string;
  /** Input side in pixels and the preprocessing preset. */
  imageSize?: number;
  augment?: string;
  /** Rows are L2-normalised. */
  normalized?: boolean;
  /** The folders walked, absolute: a row's label is the first folder below them (data/walk.ts labelUnder). */
  roots?: string[];
  [key: string]: unknown;
}

export type EmbeddingFormat = 'npy' | 'safetensors' | 'jsonl';

/** The format a file name asks for. */
export function embeddingFormat(file: string): EmbeddingFormat {
  const e = extname(file).toLowerCase();
  if (e === '.npy') return 'npy';
  if (e === '.safetensors') return 'safetensors';
  if (e === '.jsonl') return 'jsonl';
  throw new Error(`${file}: embedding files end in .npy, .safetensors or .jsonl`);
}

/** The sidecar of an `.npy`/`.jsonl` file: `emb.npy` → `emb.paths.jsonl`, `emb.meta.json` (`emb.paths.txt`: the older paths file). */
export function sidecar(file: string, suffix: 'paths.jsonl' | 'paths.txt' | 'meta.json'): string {
  const b = basename(file, extname(file));
  return join(dirname(file), `${b}.${suffix}`);
}

/** The header of a version-1.0 .npy file of a little-endian float32 count × dim matrix (padded to 64 bytes). */
export function npyHeader(count: number, dim: number): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${count}, ${dim}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1')]);
}

/** Appends embedding rows to a file; {@link finish} makes the file appear (atomically). */
export class EmbeddingWriter {
  readonly format: EmbeddingFormat;
  private readonly tmp: string;
  private readonly fd: number;
  private readonly paths: string[] = [];
  private dim = 0;
  private done = false;

  constructor(
    readonly file: string,
    private readonly meta: EmbeddingMeta = {},
  ) {
    this.format = embeddingFormat(file);
    this.tmp = join(dirname(file), `.${basename(file)}.${process.pid}.rows`);
    this.fd = openSync(this.tmp, 'w');
  }

  /** Rows (count × dim, row-major) and their image paths. */
  add(rows: Float32Array, paths: readonly string[]): void {
    if (!paths.length) return;
    const dim = rows.length / paths.length;
    if (!Number.isInteger(dim) || (this.dim && dim !== this.dim))
      throw new Error(`EmbeddingWriter: ${rows.length} values for ${paths.length} paths (dim ${this.dim || '?'})`);
    this.dim = dim;
    if (this.format === 'jsonl') {
      const lines = paths
        .map((p, i) => JSON.stringify({ path: p, embedding: Array.from(rows.subarray(i * dim, (i + 1) * dim)) }))
        .join('\n');
      writeAll(this.fd, Buffer.from(lines + '\n'));
    } else {
      writeAll(this.fd, rows);
    }
    this.paths.push(...paths);
  }

  get count(): number {
    return this.paths.length;
  }

  /** Writes the final file (and sidecars); returns its path. */
  finish(): string {
    if (this.done) return this.file;
    this.done = true;
    closeSync(this.fd);
    try {
      const meta = { ...this.meta, count: this.count, dim: this.dim };
      if (this.format === 'jsonl') {
        renameSync(this.tmp, this.file);
        writeTextAtomic(sidecar(this.file, 'meta.json'), JSON.stringify(meta, null, 1) + '\n');
        return this.file;
      }
      let head: Buffer;
      if (this.format === 'npy') {
        head = npyHeader(this.count, this.dim);
      } else {
        const h = {
          __metadata__: { paths: JSON.stringify(this.paths), embed: JSON.stringify(meta) },
          embeddings: { dtype: 'F32', shape: [this.count, this.dim], data_offsets: [0, this.count * this.dim * 4] },
        };
        let json = JSON.stringify(h);
        json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
        head = Buffer.concat([len, Buffer.from(json)]);
      }
      writeFileAtomic(this.file, (fd) => {
        writeAll(fd, head);
        copyInto(this.tmp, fd);
      });
      if (this.format === 'npy') {
        writeTextAtomic(sidecar(this.file, 'paths.jsonl'), this.paths.map((p) => JSON.stringify(p)).join('\n') + '\n');
        rmSync(sidecar(this.file, 'paths.txt'), { force: true }); // an older writer's, which readers would not prefer but people might
        writeTextAtomic(sidecar(this.file, 'meta.json'), JSON.stringify(meta, null, 1) + '\n');
      }
      return this.file;
    } finally {
      rmSync(this.tmp, { force: true });
    }
  }

  /** Drops the partial output. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    closeSync(this.fd);
    rmSync(this.tmp, { force: true });
  }
}

function copyInto(src: string, fd: number): void {
  const ifd = openSync(src, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 24);
    let pos = 0;
    for (;;) {
      const n = readSync(ifd, buf, 0, buf.length, pos);
      if (!n) break;
      writeAll(fd, buf.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(ifd);
  }
}

/** An embedding file opened for chunked reading. Call {@link close} when done. */
export class EmbeddingIndex {
  private constructor(
    readonly file: string,
    readonly count: number,
    readonly dim: number,
    readonly paths: readonly string[],
    readonly meta: EmbeddingMeta,
    private readonly fd: number | null,
    private readonly offset: number,
    private readonly rows: Float32Array | null,
  ) {}

  /** Opens `.npy` (+ sidecars), `.safetensors` or `.jsonl` (read whole: a text format for small sets). */
  static open(file: string): EmbeddingIndex {
    const format = embeddingFormat(file);
    const readMeta = (): EmbeddingMeta => {
      const m = sidecar(file, 'meta.json');
      return existsSync(m) ? (JSON.parse(readFileSync(m, 'utf8')) as EmbeddingMeta) : {};
    };
    if (format === 'jsonl') {
      const paths: string[] = [];
      const vals: number[][] = [];
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        const o = JSON.parse(line) as { path?: string; file?: string; embedding: number[] };
        paths.push(o.path ?? o.file ?? String(paths.length));
        vals.push(o.embedding);
      }
      const dim = vals[0]?.length ?? 0;
      const rows = new Float32Array(vals.length * dim);
      vals.forEach((v, i) => {
        if (v.length !== dim) throw new Error(`${file}: line ${i + 1} has ${v.length} values, the first has ${dim}`);
        rows.set(v, i * dim);
      });
      return new EmbeddingIndex(file, vals.length, dim, paths, readMeta(), null, 0, rows);
    }
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (format === 'npy') {
        const pre = Buffer.alloc(10);
        readSync(fd, pre, 0, 10, 0);
        if (pre.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
        const major = pre[6]!;
        const hl =
          major === 1
            ? pre.readUInt16LE(8)
            : (() => {
                const b = Buffer.alloc(4);
                readSync(fd, b, 0, 4, 8);
                return b.readUInt32LE(0);
              })();
        const start = major === 1 ? 10 : 12;
        const hb = Buffer.alloc(hl);
        readSync(fd, hb, 0, hl, start);
        const h = hb.toString('latin1');
        if (!/'descr':\s*'<f4'/.test(h) || /'fortran_order':\s*True/.test(h))
          throw new Error(`${file}: need a C-order float32 (<f4) array; header ${h.trim()}`);
        const m = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(h);
        if (!m) throw new Error(`${file}: need a 2-d array; header ${h.trim()}`);
        const count = Number(m[1]),
          dim = Number(m[2]);
        if (start + hl + count * dim * 4 > size)
          throw new Error(`${file}: truncated (${size} bytes for [${count}, ${dim}])`);
        const pj = sidecar(file, 'paths.jsonl');
        const pf = existsSync(pj) ? pj : sidecar(file, 'paths.txt');
        const lines = existsSync(pf)
          ? readFileSync(pf, 'utf8').split('\n').slice(0, count)
          : Array.from({ length: count }, (_, i) => `#${i}`);
        const paths = pf === pj ? lines.map((l, i) => parsePathLine(pj, l, i)) : lines;
        if (paths.length < count) throw new Error(`${pf}: ${paths.length} paths for ${count} rows`);
        return new EmbeddingIndex(file, count, dim, paths, readMeta(), fd, start + hl, null);
      }
      const lb = Buffer.alloc(8);
      readSync(fd, lb, 0, 8, 0);
      const hl = Number(lb.readBigUInt64LE());
      if (hl > size - 8) throw new Error(`${file}: not a safetensors file`);
      const hb = Buffer.alloc(hl);
      readSync(fd, hb, 0, hl, 8);
      const h = JSON.parse(hb.toString('utf8')) as Record<
        string,
        { dtype: string; shape: number[]; data_offsets: [number, number] }
      > & { __metadata__?: Record<string, string> };
      const e = h.embeddings ?? Object.entries(h).find(([k]) => k !== '__metadata__')?.[1];
      if (!e || e.dtype !== 'F32' || e.shape.length !== 2)
        throw new Error(`${file}: need a 2-d F32 tensor 'embeddings'`);
      const [count, dim] = e.shape as [number, number];
      const md = h.__metadata__ ?? {};
      const paths = md.paths ? (JSON.parse(md.paths) as string[]) : Array.from({ length: count }, (_, i) => `#${i}`);
      const meta = md.embed ? (JSON.parse(md.embed) as EmbeddingMeta) : {};
      return new EmbeddingIndex(file, count, dim, paths, meta, fd, 8 + hl + e.data_offsets[0], null);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** Rows [start, start + n) as a row-major Float32Array. */
  read(start: number, n: number): Float32Array {
    const len = Math.max(0, Math.min(n, this.count - start));
    if (this.rows) return this.rows.subarray(start * this.dim, (start + len) * this.dim);
    const out = new Float32Array(len * this.dim);
    const b = Buffer.from(out.buffer);
    let got = 0;
    const pos = this.offset + start * this.dim * 4;
    while (got < b.length) {
      const r = readSync(this.fd!, b, got, b.length - got, pos + got);
      if (!r) throw new Error(`${this.file}: file ends early`);
      got += r;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
  }
}

/** One line of a `.paths.jsonl` file: a JSON string. */
function parsePathLine(file: string, line: string, i: number): string {
  let p: unknown;
  try {
    p = JSON.parse(line);
  } catch {
    p = undefined;
  }
  if (typeof p !== 'string') throw new Error(`${file}: line ${i + 1} is not a JSON string (${line.slice(0, 80)})`);
  return p;
}

/** The rows `idx` of a row-major matrix of `width` columns, packed in that order. */
export function pickRows(rows: Float32Array, idx: readonly number[], width: number): Float32Array {
  const out = new Float32Array(idx.length * width);
  idx.forEach((r, j) => out.set(rows.subarray(r * width, (r + 1) * width), j * width));
  return out;
}
