// Perceptual hashes for near-exact copies: the DCT hash ("pHash", Zauner 2010; what imagededup's PHash and
// fastdup's near-exact stage compute). The image in grey, resized to 32×32, its 2-D DCT; the 8×8 lowest
// frequencies but the DC term are compared with their median, one bit each. A global brightness, contrast or
// gamma change, a re-encode or a resize barely moves those signs, where a one-epoch encoder's features move a lot
// (docs/collections.md). The hash of the mirror image comes for free (a horizontal flip negates the DCT
// coefficients of odd horizontal frequency), so a pair's distance is taken over both orientations. Uniform
// borders are trimmed first: a framed copy is otherwise far from its picture.
import sharp from 'sharp';
import { mapLimit } from '../data/decode.js';

/** Bits in a hash (8×8 low frequencies minus the DC term). */
export const HASH_BITS = 63;

/** Hamming distance at or below which two images are near-exact copies by default (docs/collections.md). */
export const DEFAULT_HASH_DISTANCE = 8;

const N = 32;
const K = 8;

/** cos((2x+1)uπ / 2N) for u < K, x < N: the DCT-II basis rows that the hash needs. */
const BASIS = (() => {
  const b = new Float64Array(K * N);
  for (let u = 0; u < K; u++)
    for (let x = 0; x < N; x++) b[u * N + x] = Math.cos(((2 * x + 1) * u * Math.PI) / (2 * N));
  return b;
})();

/** A hash and its mirror image's, each 63 bits in two 32-bit words (bits 0–31, then 32–62). */
export interface PHash {
  hash: [number, number];
  mirror: [number, number];
}

/** The low-frequency DCT coefficients (K×K, row = vertical frequency) of a 32×32 grey image (row-major). */
function lowDct(px: ArrayLike<number>): Float64Array {
  // Rows first (horizontal frequencies), then columns: K×N, then K×K.
  const rows = new Float64Array(N * K);
  for (let y = 0; y < N; y++)
    for (let v = 0; v < K; v++) {
      let s = 0;
      for (let x = 0; x < N; x++) s += px[y * N + x]! * BASIS[v * N + x]!;
      rows[y * K + v] = s;
    }
  const out = new Float64Array(K * K);
  for (let u = 0; u < K; u++)
    for (let v = 0; v < K; v++) {
      let s = 0;
      for (let y = 0; y < N; y++) s += rows[y * K + v]! * BASIS[u * N + y]!;
      out[u * K + v] = s;
    }
  return out;
}

function bits(c: Float64Array): [number, number] {
  const vals = Array.from(c.subarray(1));
  const med = [...vals].sort((a, b) => a - b)[(vals.length - 1) >> 1]!;
  let lo = 0;
  let hi = 0;
  vals.forEach((v, i) => {
    if (v > med) {
      if (i < 32) lo |= 1 << i;
      else hi |= 1 << (i - 32);
    }
  });
  return [lo >>> 0, hi >>> 0];
}

/** The pHash of 32×32 grey pixels (row-major, any scale), and of their mirror image. */
export function phashOfPixels(px: ArrayLike<number>): PHash {
  const c = lowDct(px);
  const m = Float64Array.from(c, (v, i) => ((i % K) % 2 ? -v : v));
  return { hash: bits(c), mirror: bits(m) };
}

/**
 * How far from the corner pixel's colour an edge row or column may stray and still be trimmed as a border
 * (sharp's trim threshold): a frame added around a copy is cut before hashing (docs/collections.md).
 */
const TRIM_THRESHOLD = 12;

/**
 * The pHash of an image file or encoded bytes: EXIF orientation applied, then uniform borders trimmed (so that
 * a framed copy hashes as its picture), then grey 32×32.
 */
export async function phashImage(input: string | Uint8Array): Promise<PHash> {
  const px = await sharp(input, { failOn: 'error' })
    .autoOrient()
    .trim({ threshold: TRIM_THRESHOLD })
    .greyscale()
    .resize(N, N, { fit: 'fill', kernel: 'lanczos3' })
    .raw()
    .toBuffer();
  if (px.length !== N * N) throw new Error(`pHash: decoded ${px.length} bytes, ${N * N} expected`);
  return phashOfPixels(px);
}

const popcount = (x: number): number => {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
};

const ham = (x: [number, number], y: [number, number]): number => popcount(x[0] ^ y[0]) + popcount(x[1] ^ y[1]);

/** Hamming distance between two images' hashes: the smallest of as-is and either one mirrored (symmetric). */
export function hashDistance(a: PHash, b: PHash): number {
  return Math.min(ham(a.hash, b.hash), ham(a.hash, b.mirror), ham(a.mirror, b.hash));
}

/** A hash as 32 hex digits (hash then mirror), for storage and JSON; {@link parsePHash} reads it back. */
export function formatPHash(h: PHash): string {
  return [...h.hash, ...h.mirror].map((w) => w.toString(16).padStart(8, '0')).join('');
}

export function parsePHash(s: string): PHash {
  if (!/^[0-9a-f]{32}$/.test(s)) throw new Error(`not a pHash (32 hex digits): '${s}'`);
  const w = [0, 8, 16, 24].map((i) => parseInt(s.slice(i, i + 8), 16));
  return { hash: [w[0]!, w[1]!], mirror: [w[2]!, w[3]!] };
}

/**
 * Every pair of `hashes` within `maxDistance` (either orientation), without comparing all pairs: the 63 bits
 * are cut into 4 blocks, and two hashes within d bits agree to within ⌊d/4⌋ bits on some block (pigeonhole), so
 * each hash, as-is and mirrored, is looked up under the block values within that many bits of its own; every
 * orientation pair of {@link hashDistance} is reached from one side or the other.
 */
export function hashPairs(hashes: readonly PHash[], maxDistance: number): [number, number, number][] {
  const blocks = 4;
  const r = Math.floor(maxDistance / blocks);
  // Block b of a hash: 16 bits (the last one 15) of the 63.
  const block = (h: [number, number], b: number): number =>
    b < 2 ? (h[0] >>> (16 * b)) & 0xffff : (h[1] >>> (16 * (b - 2))) & 0xffff;
  const tables = Array.from({ length: blocks }, () => new Map<number, number[]>());
  hashes.forEach((h, i) => {
    for (let b = 0; b < blocks; b++) {
      const key = block(h.hash, b);
      const t = tables[b]!;
      const l = t.get(key);
      if (l) l.push(i);
      else t.set(key, [i]);
    }
  });
  // Values within r bits of a 16-bit key.
  const near = (key: number): number[] => {
    const out = [key];
    if (r >= 1) for (let i = 0; i < 16; i++) out.push(key ^ (1 << i));
    if (r >= 2) for (let i = 0; i < 16; i++) for (let j = i + 1; j < 16; j++) out.push(key ^ (1 << i) ^ (1 << j));
    if (r >= 3) throw new Error(`hashPairs: maxDistance ${maxDistance} is above the 11 this lookup covers`);
    return out;
  };
  const seen = new Set<number>();
  const out: [number, number, number][] = [];
  const n = hashes.length;
  hashes.forEach((h, i) => {
    for (const probe of [h.hash, h.mirror]) {
      for (let b = 0; b < blocks; b++) {
        for (const key of near(block(probe, b))) {
          for (const j of tables[b]!.get(key) ?? []) {
            if (j === i) continue;
            const id = i < j ? i * n + j : j * n + i;
            if (seen.has(id)) continue;
            seen.add(id);
            const d = hashDistance(h, hashes[j]!);
            if (d <= maxDistance) out.push(i < j ? [i, j, d] : [j, i, d]);
          }
        }
      }
    }
  });
  return out;
}

/**
 * The pHashes of image files, `concurrency` decoded at once (sharp's threads do the work); null for a file that
 * cannot be read or decoded (it is then compared by its vector only).
 */
export async function hashFiles(
  paths: readonly string[],
  o: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<(PHash | null)[]> {
  const out: (PHash | null)[] = new Array(paths.length).fill(null);
  let done = 0;
  await mapLimit(paths.length, o.concurrency ?? 8, async (i) => {
    try {
      out[i] = await phashImage(paths[i]!);
    } catch {
      out[i] = null;
    }
    if (++done % 1000 === 0) o.onProgress?.(done, paths.length);
  });
  return out;
}

/**
 * Search hits with the near-exact copies of the query first: hits whose pHash is within `maxDistance` bits of
 * `query`'s, closest first, then the others in their given order. A brightened or re-encoded copy can sit far
 * down a one-epoch encoder's ranking; its hash does not (docs/collections.md). `hashOf` gives a hit's hash, or
 * null when its file cannot be read. Returns a new array; each promoted hit gains `hashDistance`.
 */
export async function promoteNearCopies<H extends { path: string }>(
  query: PHash,
  hits: readonly H[],
  hashOf: (path: string) => Promise<PHash | null>,
  maxDistance = DEFAULT_HASH_DISTANCE,
): Promise<(H & { hashDistance?: number })[]> {
  const dist = await Promise.all(
    hits.map(async (h) => {
      const x = await hashOf(h.path);
      return x ? hashDistance(query, x) : Infinity;
    }),
  );
  const near = hits
    .map((h, i) => ({ h, d: dist[i]!, i }))
    .filter((x) => x.d <= maxDistance)
    .sort((x, y) => x.d - y.d || x.i - y.i);
  return [...near.map((x) => ({ ...x.h, hashDistance: x.d })), ...hits.filter((_, i) => dist[i]! > maxDistance)];
}

/**
 * {@link promoteNearCopies} for image files: the query file's hash against the hashes of the first `pool` hits'
 * files (cached in `cache` across calls), the rest of the hits after them in their order. A query or hit that
 * cannot be hashed keeps its cosine rank. `pool` 0 returns the hits as they are.
 */
export async function promoteNearCopyFiles<H extends { path: string }>(
  query: string,
  hits: readonly H[],
  o: { pool: number; maxDistance?: number; cache?: Map<string, Promise<PHash | null>> },
): Promise<(H & { hashDistance?: number })[]> {
  if (!o.pool || !hits.length) return [...hits];
  const qh = await phashImage(query).catch(() => null);
  if (!qh) return [...hits];
  const cache = o.cache ?? new Map<string, Promise<PHash | null>>();
  const hashOf = (p: string): Promise<PHash | null> => {
    let h = cache.get(p);
    if (!h) {
      h = phashImage(p).catch(() => null);
      cache.set(p, h);
    }
    return h;
  };
  const front = await promoteNearCopies(qh, hits.slice(0, o.pool), hashOf, o.maxDistance);
  return [...front, ...hits.slice(o.pool)];
}
