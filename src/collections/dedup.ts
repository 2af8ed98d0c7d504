// Duplicates in a collection: exact ones by SHA-256 first, then near-duplicates among the distinct files by
// cosine ≥ threshold. Candidate pairs come from each file's nearest neighbours (the ANN index's, or an exact
// search), and every pair is then re-scored on the stored vectors, so the threshold holds on exact cosine.
// Groups form by complete linkage (every pair in a group is above the threshold: no A~B~C chains when A≁C)
// or, on request, single linkage (connected components).
import { rowSubset, searchIndex } from '../eval/search.js';
import { csvText } from '../io/csv.js';
import type { Collection, CollectionMeta, FileRow } from './table.js';
import { DEFAULT_HASH_DISTANCE, hashDistance as hamming, hashPairs, type PHash } from './phash.js';

/**
 * The embedding {@link DEFAULT_THRESHOLD} was chosen for, and what `moco dedup` on image folders uses: region
 * features (`src/eval/regions.ts`), flip-averaged, with five-crop averaging (`embedImages({ crops })`).
 */
export const DEFAULT_EMBEDDING = { feature: 'regions', flip: true, crops: 'five' } as const;

/**
 * Cosine at or above which two files count as near-duplicates by default, on {@link DEFAULT_EMBEDDING} vectors
 * PCA-whitened on the collection (`fitWhitening` with its default shrinkage), beside the pHash stage
 * (`DEFAULT_HASH_DISTANCE`): the highest threshold at which every edit of the calibration set kept a recall ≥ 0.8
 * with a 1-epoch CIFAR encoder (docs/collections.md: P 0.980, R 0.985 there; 0.954 / 0.977 on the held-out set).
 */
export const DEFAULT_THRESHOLD = 0.5;

/**
 * The default threshold without whitening (`moco dedup --no-whiten`): the best-F1 point (P 0.838, R 0.815) of
 * flip-averaged backbone features of the same encoder (docs/collections.md).
 */
export const UNWHITENED_THRESHOLD = 0.99;

export type Linkage = 'complete' | 'single';
/** Which file of a group is kept: the largest file, the oldest (mtime), or the first path in sort order. */
export type KeepRule = 'largest' | 'oldest' | 'first';

export interface DedupOpts {
  /** Cosine threshold in (−1, 1]; default {@link DEFAULT_THRESHOLD}. */
  threshold?: number;
  /** Default 'complete'. */
  linkage?: Linkage;
  /** Default 'largest'. */
  keep?: KeepRule;
  /** Neighbours looked at per file; default 10. */
  neighbours?: number;
  /**
   * Candidate neighbours (indices into `vectors`' rows) of the given rows: default an exact search over the
   * distinct files; `moco dedup --db` passes the ANN index's.
   */
  candidates?: (rows: readonly number[], k: number) => Promise<number[][]>;
  /**
   * Perceptual hashes of the rows (null where a file could not be hashed): two files within `hashDistance`
   * bits are near-duplicates whatever their cosine — the near-exact copies (brightness, contrast, gamma,
   * re-encodes, resizes) that an encoder's features may not be invariant to. Default none: cosine only.
   */
  hashes?: readonly (PHash | null)[];
  /** Largest Hamming distance between hashes of near-duplicates; default {@link DEFAULT_HASH_DISTANCE}. */
  hashDistance?: number;
}

export interface DupMember extends FileRow {
  /** Cosine to the keeper (1 for exact copies). */
  score: number;
  /** pHash distance to the keeper (bits), when hashes were compared. */
  hashDistance?: number;
}

export interface DupGroup {
  /** 'exact' when all members have the same bytes, else 'near'. */
  kind: 'exact' | 'near';
  keeper: DupMember;
  /** The others, to remove or review. */
  duplicates: DupMember[];
  /** Lowest cosine between any two members (below the threshold where two members are linked by their pHash). */
  minScore: number;
}

export interface DedupResult {
  threshold: number;
  linkage: Linkage;
  keep: KeepRule;
  files: number;
  groups: DupGroup[];
  /** Files that are not keepers. */
  removable: number;
}

/**
 * Vectors (rows × dim) made ready for cosine comparison: optionally centred on their mean (removes the large
 * component that all pooled, post-ReLU features share, which puts unrelated images at cosines near 1), then
 * L2-normalised. Returns a new array.
 */
export function prepareVectors(
  vectors: Float32Array,
  dim: number,
  o: { center?: boolean | Float32Array } = {},
): Float32Array {
  const n = vectors.length / dim;
  const out = Float32Array.from(vectors);
  const mean = o.center === true ? meanVector(vectors, dim) : o.center instanceof Float32Array ? o.center : null;
  for (let i = 0; i < n; i++) {
    const off = i * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) {
      const x = out[off + j]! - (mean ? mean[j]! : 0);
      out[off + j] = x;
      s += x * x;
    }
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++) out[off + j]! *= inv;
  }
  return out;
}

/** The mean of the rows (rows × dim). */
export function meanVector(vectors: Float32Array, dim: number): Float32Array {
  const n = vectors.length / dim;
  const acc = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) acc[j]! += vectors[i * dim + j]!;
  return Float32Array.from(acc, (x) => (n ? x / n : 0));
}

const dot = (v: Float32Array, dim: number, a: number, b: number): number => {
  let s = 0;
  const oa = a * dim;
  const ob = b * dim;
  for (let j = 0; j < dim; j++) s += v[oa + j]! * v[ob + j]!;
  return s;
};

/** Exact top-k neighbours among `rows` of `vectors` (row-major, normalised), by blocked matrix products. */
export function exactCandidates(
  vectors: Float32Array,
  dim: number,
): (rows: readonly number[], k: number) => Promise<number[][]> {
  return async (rows, k) => {
    const view = rowSubset(rows, dim, (r) => vectors.subarray(r * dim, (r + 1) * dim));
    const out: number[][] = [];
    const step = 4096;
    for (let i = 0; i < rows.length; i += step) {
      const q = view.read(i, step);
      for (const ns of searchIndex(view, q, { top: k + 1, chunkBytes: 64 * 2 ** 20 }))
        out.push(ns.map((n) => rows[n.index]!));
    }
    return out;
  };
}

/** The embedding of a collection's vectors: feature, flip-averaging and crop-averaging as `moco index` made them. */
export interface EmbeddingKind {
  feature: string;
  flip: boolean;
  crops: string;
}

/** The embedding a collection records; what it leaves out is the default (backbone, no flip, no crops). */
export function recordedEmbedding(meta: CollectionMeta): EmbeddingKind {
  return { feature: meta.feature ?? 'backbone', flip: meta.flip === true, crops: meta.crops ?? 'none' };
}

/** Whether `e` is {@link DEFAULT_EMBEDDING}, the one the default thresholds were chosen on. */
export function isDefaultEmbedding(e: EmbeddingKind): boolean {
  const d = DEFAULT_EMBEDDING;
  return e.feature === d.feature && e.flip === d.flip && e.crops === d.crops;
}

/**
 * Candidate neighbours from a collection's ANN index, as {@link DedupOpts.candidates} takes them: each row's
 * stored vector (`vectors`, rows × dim, in the order of `rows`) is searched for its k + 1 nearest, 256 queries
 * at a time, and the hits are mapped back to indices into `rows` (hits outside them, e.g. filtered out by a
 * `where`, are dropped). Only meaningful while `vectors` are the ones the index was built on.
 */
export function collectionCandidates(
  coll: Collection,
  rows: readonly FileRow[],
  vectors: Float32Array,
  dim: number,
): (rows: readonly number[], k: number) => Promise<number[][]> {
  const byId = new Map(rows.map((r, i) => [r.id, i]));
  return async (picked, k) => {
    const out: number[][] = [];
    const step = 256;
    for (let i = 0; i < picked.length; i += step) {
      const part = picked.slice(i, i + step);
      const q = new Float32Array(part.length * dim);
      part.forEach((r, j) => q.set(vectors.subarray(r * dim, (r + 1) * dim), j * dim));
      for (const hs of await coll.search(q, { top: k + 1 })) {
        out.push(hs.flatMap((h) => (byId.has(h.id) ? [byId.get(h.id)!] : [])));
      }
    }
    return out;
  };
}

/**
 * The groups as CSV, one line a file: group (0-based), kind, role (keep or duplicate), path, label, sha256,
 * bytes, mtime (ISO 8601), score (cosine to the keeper, 6 decimals); each group's keeper first.
 */
export function groupsCsv(groups: readonly DupGroup[]): string {
  const rows: (string | number | null)[][] = [];
  groups.forEach((g, gi) => {
    for (const [role, m] of [['keep', g.keeper], ...g.duplicates.map((d) => ['duplicate', d] as const)] as const) {
      const mtime = new Date(m.mtime).toISOString();
      rows.push([gi, g.kind, role, m.path, m.label, m.sha256, m.bytes, mtime, m.score.toFixed(6)]);
    }
  });
  return csvText(['group', 'kind', 'role', 'path', 'label', 'sha256', 'bytes', 'mtime', 'score'], rows);
}

/**
 * Groups of duplicates among `rows` (with `vectors`, rows × dim, L2-normalised; with `hashes`, their pHashes
 * too). Each group names its keeper by the keep rule; groups are sorted largest first.
 */
export async function findDuplicates(
  rows: readonly FileRow[],
  vectors: Float32Array,
  dim: number,
  o: DedupOpts = {},
): Promise<DedupResult> {
  const t = o.threshold ?? DEFAULT_THRESHOLD;
  if (!(t > -1 && t <= 1)) throw new Error(`--threshold must be a cosine in (−1, 1], got ${t}`);
  const linkage = o.linkage ?? 'complete';
  const keep = o.keep ?? 'largest';
  const k = o.neighbours ?? 10;
  // Exact copies collapse onto one representative (the first path) before any vector work.
  const bySha = new Map<string, number[]>();
  rows.forEach((r, i) => {
    const g = bySha.get(r.sha256);
    if (g) g.push(i);
    else bySha.set(r.sha256, [i]);
  });
  const reps = [...bySha.values()].map((g) => g.sort((a, b) => (rows[a]!.path < rows[b]!.path ? -1 : 1))[0]!);
  const cand = await (o.candidates ?? exactCandidates(vectors, dim))(reps, k);
  const H = o.hashDistance ?? DEFAULT_HASH_DISTANCE;
  const hashes = o.hashes;
  if (hashes && hashes.length !== rows.length)
    throw new Error(`findDuplicates: ${hashes.length} hashes for ${rows.length} rows`);
  const ham = (a: number, b: number): number => (hashes?.[a] && hashes[b] ? hamming(hashes[a]!, hashes[b]!) : Infinity);
  /** Whether two files are near-duplicates: cosine at or above the threshold, or pHashes within H bits. */
  const near = (a: number, b: number): boolean => dot(vectors, dim, a, b) >= t || ham(a, b) <= H;
  // Edges carry a merge priority: pHash matches first (closest first, priority 2 + H − distance, above any
  // cosine), then cosine pairs, most similar first.
  const edges: [number, number, number][] = [];
  const seen = new Set<string>();
  cand.forEach((ns, qi) => {
    const a = reps[qi]!;
    for (const b of ns) {
      if (b === a || rows[b]!.sha256 === rows[a]!.sha256) continue;
      const key = a < b ? `${a},${b}` : `${b},${a}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const s = dot(vectors, dim, a, b);
      const d = ham(a, b);
      if (d <= H) edges.push([a, b, 2 + H - d]);
      else if (s >= t) edges.push([a, b, s]);
    }
  });
  if (hashes) {
    // Hash neighbours the vectors' neighbour lists missed (a brightened copy can be far in feature space).
    const repIdx = reps.filter((r) => hashes[r]);
    for (const [x, y, d] of hashPairs(
      repIdx.map((r) => hashes[r]!),
      H,
    )) {
      const a = repIdx[x]!;
      const b = repIdx[y]!;
      const key = a < b ? `${a},${b}` : `${b},${a}`;
      if (seen.has(key)) continue;
      seen.add(key);
      edges.push([a, b, 2 + H - d]);
    }
  }
  edges.sort((x, y) => y[2] - x[2]);
  // Agglomerate, most similar pairs first. Complete linkage merges two groups only when every cross pair is
  // above the threshold (checked on the vectors, so pairs the neighbour lists missed count too).
  const groupOf = new Map<number, number[]>();
  const get = (i: number): number[] => {
    let g = groupOf.get(i);
    if (!g) {
      g = [i];
      groupOf.set(i, g);
    }
    return g;
  };
  for (const [a, b] of edges) {
    const ga = get(a);
    const gb = get(b);
    if (ga === gb) continue;
    if (linkage === 'complete' && !ga.every((x) => gb.every((y) => near(x, y)))) continue;
    const [big, small] = ga.length >= gb.length ? [ga, gb] : [gb, ga];
    for (const x of small) {
      big.push(x);
      groupOf.set(x, big);
    }
  }
  const groups: DupGroup[] = [];
  const done = new Set<number[]>();
  for (const rep of reps) {
    const g = groupOf.get(rep);
    if (g) {
      if (done.has(g)) continue;
      done.add(g);
    }
    const members = (g ?? [rep]).flatMap((r) => bySha.get(rows[r]!.sha256)!);
    if (members.length < 2) continue;
    const keeper = chooseKeeper(
      members.map((i) => rows[i]!),
      keep,
    );
    const ki = members[keeper]!;
    let minScore = 1;
    for (let x = 0; x < members.length; x++)
      for (let y = x + 1; y < members.length; y++) {
        const a = members[x]!;
        const b = members[y]!;
        minScore = Math.min(minScore, rows[a]!.sha256 === rows[b]!.sha256 ? 1 : dot(vectors, dim, a, b));
      }
    const member = (i: number): DupMember => {
      const same = rows[i]!.sha256 === rows[ki]!.sha256;
      const d = same ? 0 : ham(i, ki);
      return {
        ...rows[i]!,
        score: same ? 1 : dot(vectors, dim, i, ki),
        ...(hashes && Number.isFinite(d) ? { hashDistance: d } : {}),
      };
    };
    groups.push({
      kind: g && g.length > 1 ? 'near' : 'exact',
      keeper: member(ki),
      duplicates: members
        .filter((i) => i !== ki)
        .map(member)
        .sort((a, b) => b.score - a.score),
      minScore,
    });
  }
  groups.sort((a, b) => b.duplicates.length - a.duplicates.length || (a.keeper.path < b.keeper.path ? -1 : 1));
  return {
    threshold: t,
    linkage,
    keep,
    files: rows.length,
    groups,
    removable: groups.reduce((s, g) => s + g.duplicates.length, 0),
  };
}

/** Index of the keeper among `members` by the rule; ties go to the first path. */
export function chooseKeeper(members: readonly FileRow[], rule: KeepRule): number {
  let best = 0;
  for (let i = 1; i < members.length; i++) {
    const a = members[i]!;
    const b = members[best]!;
    const better =
      rule === 'largest'
        ? a.bytes > b.bytes || (a.bytes === b.bytes && a.path < b.path)
        : rule === 'oldest'
          ? a.mtime < b.mtime || (a.mtime === b.mtime && a.path < b.path)
          : a.path < b.path;
    if (better) best = i;
  }
  return best;
}

/** All unordered pairs of paths that share a group (for precision/recall against known duplicate pairs). */
export function groupPairs(groups: readonly DupGroup[]): Set<string> {
  const out = new Set<string>();
  for (const g of groups) {
    const ps = [g.keeper.path, ...g.duplicates.map((d) => d.path)].sort();
    for (let i = 0; i < ps.length; i++) for (let j = i + 1; j < ps.length; j++) out.add(`${ps[i]}\n${ps[j]}`);
  }
  return out;
}
