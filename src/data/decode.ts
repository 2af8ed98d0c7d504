// Image decoding with sharp (libvips in libuv threads): any format/mode → RGB uint8, optional crop+resize during
// decode, and whole-dataset decoding into one N×3×H×W uint8 tensor with an on-disk cache.
import sharp from 'sharp';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, renameSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { tensor, tidy, type Tensor } from '../torch/index.js';
import type { Skipped } from './walk.js';
import { commonFolder } from './common-folder.js';
import { cacheDir, cacheMaxBytes, evictCache, listCache, touchCacheFile, type CacheEntry } from './decode-cache.js';
import { FileImages, TensorImages, type DecodedImages } from './decoded-images.js';
import { writeAll } from '../io/atomic.js';

export { cacheDir } from './decode-cache.js';

// One libvips thread per image: parallelism comes from decoding several images at once in the libuv pool,
// which scales better for many small images than threading inside one. No operation cache: each file is
// decoded once per epoch, caching only costs memory.
sharp.concurrency(1);
sharp.cache(false);

/** An RGB image, row-major HWC uint8. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** A rectangle in pixels of the (EXIF-oriented) source image. */
export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface DecodeOpts {
  /** Region to extract before resizing (source pixels, after EXIF orientation). Default: the whole image. */
  crop?: Box;
  /** Output size in pixels; the region is stretched to it (bilinear, antialiased when shrinking). */
  resize?: { width: number; height: number };
  /** Mirror horizontally after resizing. Default false. */
  flip?: boolean;
}

/** Width and height after EXIF orientation, read from the header only. */
export async function imageSize(input: string | Uint8Array): Promise<{ width: number; height: number }> {
  const m = await sharp(input).metadata();
  const w = m.autoOrient?.width ?? m.width;
  const h = m.autoOrient?.height ?? m.height;
  if (!w || !h) throw new Error('image has no size');
  return { width: w, height: h };
}

/**
 * Decodes any image sharp reads (JPEG, PNG, WebP, TIFF, GIF, AVIF…; grayscale, CMYK, alpha, 16-bit, EXIF
 * orientation) to 8-bit RGB. Alpha is dropped, as PIL's `convert('RGB')`. With `crop`/`resize` the work is done
 * during decode (JPEG shrink-on-load), so a huge photo never exists at full size. Rejects on corrupt input.
 */
export async function decodeImage(input: string | Uint8Array, o: DecodeOpts = {}): Promise<DecodedImage> {
  let p = sharp(input, { failOn: 'error' }).autoOrient();
  if (o.crop) p = p.extract(o.crop);
  if (o.resize) p = p.resize(o.resize.width, o.resize.height, { fit: 'fill', kernel: 'linear' });
  if (o.flip) p = p.flop();
  const { data, info } = await p
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
  };
}

/**
 * Images of one width decoded in one sharp call and stacked top to bottom (sharp's `join`), as
 * {@link decodeImage} without options would decode each (no EXIF orientation applied: for inputs without it).
 * Rejects when any input is broken.
 */
export async function decodeStack(inputs: Uint8Array[]): Promise<DecodedImage> {
  const { data, info } = await sharp(inputs, { failOn: 'error', join: { across: 1 } })
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
  };
}

/** HWC uint8 images of one size → N×3×H×W uint8 tensor. */
export function hwcBatchToTensor(buf: Uint8Array, n: number, height: number, width: number): Tensor {
  return tidy(() =>
    tensor(buf, { shape: [n, height, width, 3], dtype: 'uint8' })
      .permute(0, 3, 1, 2)
      .contiguous(),
  );
}

/** Reports each file left out once per process (path and reason) on stderr, and remembers it. */
export class SkipLog {
  private readonly seen = new Map<string, string>();
  constructor(private readonly sink: (line: string) => void = (l) => process.stderr.write(l + '\n')) {}
  report(path: string, reason: string): void {
    if (this.seen.has(path)) return;
    this.seen.set(path, reason);
    this.sink(`moco: skipping ${path}: ${reason}`);
  }
  has(path: string): boolean {
    return this.seen.has(path);
  }
  /** Why `path` was reported, or undefined if it was not. */
  reasonOf(path: string): string | undefined {
    return this.seen.get(path);
  }
  get list(): Skipped[] {
    return [...this.seen].map(([path, reason]) => ({ path, reason }));
  }
}

/** The process-wide skip log. */
export const skipLog = new SkipLog();

function reasonOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.split('\n')[0]!.trim();
}

/** Runs `fn` over 0..n-1 with at most `limit` promises in flight. */
export async function mapLimit(n: number, limit: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

export interface DecodeAllOpts {
  /** Every image is resized to this (height, width); default: the size of the first readable image. */
  size?: [number, number];
  /** Images decoded at once (libuv threads do the work). Default 16. */
  concurrency?: number;
  /** Cache the result on disk (see {@link decodeAllCached}). Default true there, ignored here. */
  cache?: boolean;
  /** Where unreadable files are reported. Default: the process-wide {@link skipLog}. */
  log?: SkipLog;
}

/** Result of decoding a list of files into memory. */
export interface DecodedSet {
  /** N×3×H×W uint8, N = ok.length. */
  images: Tensor;
  /** Positions (in the input list) of the images kept, ascending. */
  ok: Int32Array;
  skipped: Skipped[];
}

/**
 * Decodes every file into one N×3×H×W uint8 tensor, in parallel in sharp's threads. Unreadable files are
 * reported once and left out (see `ok`); a list with no readable image is an error. Images of another size than
 * the first are resized to it (fill).
 */
export async function decodeAll(paths: readonly string[], o: DecodeAllOpts = {}): Promise<DecodedSet> {
  const log = o.log ?? skipLog;
  const n = paths.length;
  let size = o.size;
  // Find the common size from the first readable image.
  let first = 0;
  while (!size && first < n) {
    try {
      const s = await imageSize(paths[first]!);
      size = [s.height, s.width];
    } catch (e) {
      log.report(paths[first]!, reasonOf(e));
      first++;
    }
  }
  if (!size) throw new Error(`no readable image among ${n} files${n ? ` (first: ${paths[0]})` : ''}`);
  const [h, w] = size;
  const per = h * w * 3;
  const buf = new Uint8Array(n * per);
  const good = new Uint8Array(n);
  const skipped: Skipped[] = [];
  await mapLimit(n, o.concurrency ?? 16, async (i) => {
    const p = paths[i]!;
    try {
      const img = await decodeImage(p);
      const out = img.width === w && img.height === h ? img : await decodeImage(p, { resize: { width: w, height: h } });
      buf.set(out.data, i * per);
      good[i] = 1;
    } catch (e) {
      const reason = reasonOf(e);
      skipped.push({ path: p, reason });
      log.report(p, reason);
    }
  });
  const okList: number[] = [];
  for (let i = 0; i < n; i++) if (good[i]) okList.push(i);
  if (!okList.length) throw new Error(`no readable image among ${n} files (first: ${paths[0]}: ${skipped[0]?.reason})`);
  let packed = buf;
  if (okList.length < n) {
    packed = new Uint8Array(okList.length * per);
    okList.forEach((src, dst) => packed.set(buf.subarray(src * per, (src + 1) * per), dst * per));
  }
  skipped.sort((a, b) => (a.path < b.path ? -1 : 1));
  return { images: hwcBatchToTensor(packed, okList.length, h, w), ok: Int32Array.from(okList), skipped };
}

const CACHE_VERSION = 1;

async function cacheKey(paths: readonly string[], size: [number, number] | undefined): Promise<string> {
  const h = createHash('sha256');
  h.update(`moco-ts decoded v${CACHE_VERSION} ${size ? size.join('x') : 'auto'}\n`);
  const stats: string[] = new Array(paths.length);
  await mapLimit(paths.length, 64, async (i) => {
    try {
      const s = await stat(paths[i]!);
      stats[i] = `${resolve(paths[i]!)}\t${s.size}\t${s.mtimeMs}\n`;
    } catch {
      stats[i] = `${paths[i]}\tmissing\n`;
    }
  });
  for (const s of stats) h.update(s);
  return h.digest('hex').slice(0, 32);
}

/** A decoded dataset whose pixels are read a batch at a time (see {@link decodeAllCached}). */
export interface DecodedRows {
  /** N×3×H×W uint8 rows, N = ok.length: the cache file's, or in memory when nothing was cached. */
  images: DecodedImages;
  /** Positions (in the input list) of the images kept, ascending. */
  ok: Int32Array;
  skipped: Skipped[];
}

/**
 * {@link decodeAll} with a disk cache: the decoded pixels are stored under {@link cacheDir} in a file named by a
 * hash of every path with its size and mtime, so the second run over an unchanged dataset (e.g. CIFAR-10's
 * 50,000 JPEGs, ~150 MB decoded) starts in about a second instead of decoding again. A changed, added or removed
 * file changes the key. The cache is bounded (`MOCO_CACHE_MAX`, default 8 GiB; least recently used files go
 * first). Set `cache: false` or `MOCO_NO_CACHE=1` to bypass it. The rows are read from the cache file when their
 * batch is built ({@link FileImages}); they are held in memory only when nothing could be cached.
 */
export async function decodeAllCached(paths: readonly string[], o: DecodeAllOpts = {}): Promise<DecodedRows> {
  const inMemory = (set: DecodedSet): DecodedRows => ({
    images: new TensorImages(set.images, true),
    ok: set.ok,
    skipped: set.skipped,
  });
  if (o.cache === false || process.env.MOCO_NO_CACHE === '1') return inMemory(await decodeAll(paths, o));
  const key = await cacheKey(paths, o.size);
  const dir = cacheDir();
  const file = join(dir, `decoded-${key}.bin`);
  if (existsSync(file)) {
    try {
      const opened = openCache(file);
      touchCacheFile(file);
      for (const s of opened.skipped) (o.log ?? skipLog).report(s.path, s.reason);
      return opened;
    } catch {
      // A damaged cache file is rebuilt below.
    }
  }
  const set = await decodeAll(paths, o);
  try {
    const max = cacheMaxBytes();
    if (set.images.numel() <= max) {
      writeCache(dir, file, set, { dir: commonFolder(paths.map((p) => resolve(p))), files: paths.length });
      evictCache(max, file, dir);
      const opened = openCache(file);
      set.images.dispose();
      return opened;
    }
  } catch {
    // The cache is an optimisation: a read-only or full disk must not fail the run.
  }
  return inMemory(set);
}

/** What a cached dataset was decoded from, so that `moco cache ls` can say more than a hash. */
export interface CacheSource {
  /** The deepest folder holding every file (absolute). */
  dir: string;
  /** Image files given to the decoder (those that failed to decode included). */
  files: number;
}

interface CacheHeader {
  n: number;
  height: number;
  width: number;
  ok: number[];
  skipped: Skipped[];
  /** Absent in files written before it was recorded; readers ignore it. */
  source?: CacheSource;
}

function writeCache(dir: string, file: string, set: DecodedSet, source: CacheSource): void {
  mkdirSync(dir, { recursive: true });
  const [n, , height, width] = set.images.shape as [number, number, number, number];
  const header: CacheHeader = { n, height, width, ok: Array.from(set.ok), skipped: set.skipped, source };
  const hb = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeUInt32LE(hb.length, 0);
  len.writeUInt32LE(0x4f434f4d, 4); // "MOCO"
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, len);
    writeAll(fd, hb);
    // A few MB at a time: a copy of the whole dataset would add its size to the first run's peak memory.
    const per = 3 * height * width;
    const step = Math.max(1, Math.floor((8 << 20) / per));
    const buf = new Uint8Array(step * per);
    for (let i = 0; i < n; i += step) {
      const k = Math.min(step, n - i);
      tidy(() =>
        set.images
          .narrow(0, i, k)
          .contiguous()
          .copyToArray(buf.subarray(0, k * per)),
      );
      writeAll(fd, buf.subarray(0, k * per));
    }
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** A cache file's JSON header and its length in bytes (the image data starts at 8 + length). */
function readCacheHeader(fd: number): { header: CacheHeader; hl: number } {
  const head = Buffer.alloc(8);
  if (readSync(fd, head, 0, 8, 0) !== 8 || head.readUInt32LE(4) !== 0x4f434f4d) throw new Error('bad cache magic');
  const hl = head.readUInt32LE(0);
  const hb = Buffer.alloc(hl);
  if (readSync(fd, hb, 0, hl, 8) !== hl) throw new Error('truncated cache file');
  return { header: JSON.parse(hb.toString()) as CacheHeader, hl };
}

/**
 * The cache's files as {@link listCache} lists them, each with what it was decoded from: `source` is null for a
 * file written before sources were recorded, or one that cannot be read.
 */
export function listCacheSources(dir = cacheDir()): (CacheEntry & { source: CacheSource | null })[] {
  return listCache(dir).map((e) => {
    let source: CacheSource | null = null;
    try {
      const fd = openSync(e.file, 'r');
      try {
        source = readCacheHeader(fd).header.source ?? null;
      } finally {
        closeSync(fd);
      }
    } catch {
      /* removed meanwhile, or damaged: listed without a source */
    }
    return { ...e, source };
  });
}

function openCache(file: string): DecodedRows {
  const fd = openSync(file, 'r');
  let header: CacheHeader;
  let offset: number;
  try {
    const read = readCacheHeader(fd);
    header = read.header;
    offset = 8 + read.hl;
    if (fstatSync(fd).size !== offset + header.n * 3 * header.height * header.width)
      throw new Error('truncated cache file');
  } finally {
    closeSync(fd);
  }
  return {
    images: new FileImages(file, offset, [header.n, 3, header.height, header.width]),
    ok: Int32Array.from(header.ok),
    skipped: header.skipped,
  };
}
