// What `/v1/search` searches, behind one small interface: the exact index of `moco embed` (an embedding file
// scanned in full, the reference any ANN index is tested against) or a LanceDB collection of `moco index`
// (`--db`, ANN search once indexed; see lance-backend.ts).
import { isAbsolute, resolve } from 'node:path';
import { EmbeddingIndex } from '../eval/embedding-file.js';
import { rowSubset, searchIndex } from '../eval/search.js';
import { commonFolder } from '../data/common-folder.js';
import { labelUnder } from '../data/walk.js';

/**
 * A structured filter, matched field by field (never spliced into a query string): every given field must
 * hold. `label` is the name of the first folder below the folder that was embedded (ImageFolder's class).
 */
export interface SearchFilter {
  /** One label or any of several. */
  label?: string | string[];
  /** Path starts with this string. */
  pathPrefix?: string;
}

export interface SearchHit {
  /** Row in the index. */
  row: number;
  /** The image file, absolute. */
  path: string;
  label: string | null;
  /** Cosine similarity in [−1, 1]. */
  score: number;
}

export interface SearchBackend {
  /** 'exact' (an embedding file) or another engine's name. */
  readonly kind: string;
  /** Where the rows come from (a file or URI). */
  readonly source: string;
  /** Rows searchable. */
  readonly size: number;
  readonly dim: number;
  /** What produced the rows (the embedding file's metadata), for consistency checks. */
  readonly meta: Record<string, unknown>;
  /**
   * The deepest folder holding every row's image (absolute; '' for an empty index): the folder that was indexed,
   * which the service reports image paths relative to.
   */
  readonly root: string;
  /** The `top` best rows for each query (Q × dim row-major), best first, among the rows the filter keeps. */
  search(queries: Float32Array, top: number, filter?: SearchFilter): Promise<SearchHit[][]>;
  /** The absolute image path of a row (an embedding file's row number, a collection's id), or undefined when there is none. */
  path(row: number): Promise<string | undefined>;
  close(): Promise<void>;
}

/** Exact cosine search over an embedding file (`.npy` + paths, `.safetensors`, `.jsonl`) from `moco embed`. */
export class ExactIndexBackend implements SearchBackend {
  readonly kind = 'exact';
  private readonly labels: (string | null)[];
  /** The index's paths resolved against the working directory (`moco embed` records them as given). */
  private readonly paths: readonly string[];
  readonly root: string;

  private constructor(private readonly index: EmbeddingIndex) {
    this.paths = index.paths.every(isAbsolute) ? index.paths : index.paths.map((p) => resolve(p));
    this.root = commonFolder(this.paths);
    // The walk's label rule, below the folders `moco embed` walked (recorded as `roots`); a file without them is
    // taken to have been embedded from the deepest folder holding all its images.
    const recorded = index.meta.roots;
    const roots =
      Array.isArray(recorded) && recorded.every((r) => typeof r === 'string')
        ? recorded.map((r) => resolve(r))
        : [this.root];
    this.labels = this.paths.map((p) => labelUnder(roots, p));
  }

  static open(file: string): ExactIndexBackend {
    return new ExactIndexBackend(EmbeddingIndex.open(file));
  }

  get source(): string {
    return this.index.file;
  }
  get size(): number {
    return this.index.count;
  }
  get dim(): number {
    return this.index.dim;
  }
  get meta(): Record<string, unknown> {
    return this.index.meta;
  }

  async path(row: number): Promise<string | undefined> {
    return Number.isInteger(row) && row >= 0 && row < this.index.count ? this.paths[row] : undefined;
  }

  async search(queries: Float32Array, top: number, filter: SearchFilter = {}): Promise<SearchHit[][]> {
    const rows = this.rowsMatching(filter);
    const hit = (row: number, score: number): SearchHit => ({
      row,
      path: this.paths[row]!,
      label: this.labels[row]!,
      score,
    });
    if (rows === null)
      return searchIndex(this.index, queries, { top }).map((ns) => ns.map((n) => hit(n.index, n.score)));
    if (!rows.length) return Array.from({ length: queries.length / this.dim }, () => []);
    // A view of the kept rows; the search's row numbers are mapped back to the index's.
    const view = rowSubset(rows, this.dim, (r) => this.index.read(r, 1));
    return searchIndex(view, queries, { top }).map((ns) => ns.map((n) => hit(rows[n.index]!, n.score)));
  }

  /** Rows kept by `filter`, or null when it keeps everything. */
  private rowsMatching(f: SearchFilter): number[] | null {
    const labels = f.label === undefined ? null : new Set(Array.isArray(f.label) ? f.label : [f.label]);
    if (!labels && f.pathPrefix === undefined) return null;
    const out: number[] = [];
    for (let r = 0; r < this.index.count; r++) {
      if (labels && !labels.has(this.labels[r] ?? '')) continue;
      if (f.pathPrefix !== undefined && !this.paths[r]!.startsWith(f.pathPrefix)) continue;
      out.push(r);
    }
    return out;
  }

  async close(): Promise<void> {
    this.index.close();
  }
}

/** Opens the backend the flags ask for: `--index FILE` (exact) or `--db URI` (a LanceDB collection). */
export async function openSearchBackend(o: { index?: string; db?: string }): Promise<SearchBackend | null> {
  if (o.db !== undefined && o.index !== undefined) throw new Error('give --index FILE or --db DIR, not both');
  if (o.db !== undefined) return (await import('./lance-backend.js')).LanceBackend.open(o.db);
  return o.index !== undefined ? ExactIndexBackend.open(o.index) : null;
}
