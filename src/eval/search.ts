// Exact nearest-neighbour search by cosine similarity over an embedding file: the index is read in row chunks,
// each chunk's similarities to all queries are one matrix product, and a running top-k is merged chunk by chunk,
// so an index of 1M × 2048 floats (8 GB) is searched in a few hundred MB.
import { F, cat, tensor, tidy, keep, type Tensor } from '../torch/index.js';
import type { EmbeddingIndex } from './embedding-file.js';

/** What {@link searchIndex} reads: an opened embedding file, or any row source of the same shape. */
export type SearchRows = Pick<EmbeddingIndex, 'count' | 'dim' | 'paths' | 'read'>;

/**
 * A {@link SearchRows} over a subset of another row source: view row `i` is source row `rows[i]`, read one row
 * at a time by `row` (a `dim`-long vector). Paths are empty; map the search's row numbers back through `rows`.
 */
export function rowSubset(rows: readonly number[], dim: number, row: (r: number) => Float32Array): SearchRows {
  return {
    count: rows.length,
    dim,
    paths: [],
    read: (start, n) => {
      const len = Math.max(0, Math.min(n, rows.length - start));
      const out = new Float32Array(len * dim);
      for (let i = 0; i < len; i++) out.set(row(rows[start + i]!), i * dim);
      return out;
    },
  };
}

export interface SearchOpts {
  /** Neighbours a query; default 10. */
  top?: number;
  /** Bytes of index rows (and of query × row similarities) a chunk; default 256 MiB. */
  chunkBytes?: number;
  /** Called after each chunk with (rows done, total rows). */
  onProgress?: (done: number, total: number) => void;
}

/** One neighbour. */
export interface Neighbour {
  /** Row in the index. */
  index: number;
  path: string;
  /** Cosine similarity in [−1, 1]. */
  score: number;
}

/**
 * The `top` most similar index rows of each query (Q × D row-major, normalised or not), best first.
 * Similarities are cosines: index rows and queries are L2-normalised here.
 */
export function searchIndex(index: SearchRows, queries: Float32Array, o: SearchOpts = {}): Neighbour[][] {
  const dim = index.dim;
  const nq = queries.length / dim;
  if (!Number.isInteger(nq))
    throw new Error(`search: ${queries.length} query values are not a multiple of the index's dim ${dim}`);
  const top = Math.max(1, Math.min(o.top ?? 10, index.count));
  const budget = o.chunkBytes ?? 256 * 2 ** 20;
  const rows = Math.max(top, Math.floor(budget / (4 * Math.max(dim, nq, 1))));
  const q = keep(tidy(() => F.normalize(tensor(queries, { shape: [nq, dim] }), { dim: 1 })));
  let bestV: Tensor | null = null;
  let bestI: Tensor | null = null;
  try {
    for (let start = 0; start < index.count; start += rows) {
      const block = index.read(start, rows);
      const n = block.length / dim;
      const [v, i] = tidy(() => {
        const x = F.normalize(tensor(block, { shape: [n, dim] }), { dim: 1 });
        const sim = q.mm(x.t());
        const k = Math.min(top, n);
        const r = sim.topk(k, 1);
        let vals = r.values;
        let idx = r.indices.add(start);
        if (bestV && bestI) {
          // Merge with the running best; earlier rows come first, so ties keep the lower index.
          const allV = cat([bestV, vals], 1);
          const allI = cat([bestI, idx], 1);
          const m = allV.topk(Math.min(top, allV.shape[1]!), 1);
          vals = m.values;
          idx = allI.gather(1, m.indices);
        }
        return [keep(vals.contiguous()), keep(idx.contiguous())];
      });
      bestV?.dispose();
      bestI?.dispose();
      bestV = v!;
      bestI = i!;
      o.onProgress?.(Math.min(index.count, start + n), index.count);
    }
    if (!bestV || !bestI) return Array.from({ length: nq }, () => []);
    const vs = bestV.data() as Float32Array;
    const is = bestI.toArray();
    const k = bestV.shape[1]!;
    return Array.from({ length: nq }, (_, r) =>
      Array.from({ length: k }, (_, j) => {
        const ix = is[r * k + j]!;
        return { index: ix, path: index.paths[ix] ?? `#${ix}`, score: vs[r * k + j]! };
      }),
    );
  } finally {
    q.dispose();
    bestV?.dispose();
    bestI?.dispose();
  }
}
