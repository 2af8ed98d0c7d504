// What dedup, cluster and select work on: a collection's rows with their stored vectors, or image files embedded
// in memory (for folders without a collection), in one shape.
import { resolve } from 'node:path';
import { walkImages, type Skipped } from '../data/walk.js';
import { embedImagesWith, pickRows, type EmbedOpts } from '../eval/index.js';
import { fileFacts } from './index-images.js';
import { parseWhere } from './filter.js';
import { Collection, idOf, type FileRow } from './table.js';

/** Files with their facts and vectors, and where they came from. */
export interface LoadedRows {
  rows: FileRow[];
  /** rows × dim, row-major, in the order of `rows`. */
  vectors: Float32Array;
  dim: number;
  /** The open collection the rows were read from, or null for embedded files (the caller closes it). */
  coll: Collection | null;
  /** The collection's URI, or the image arguments joined by spaces. */
  source: string;
}

/**
 * Every row of the collection at `uri`, or those passing `where` (a structured filter, see `parseWhere`), with
 * their stored vectors; the collection is left open in `coll`. Fails when no row is left.
 */
export async function readCollectionRows(uri: string, where?: string): Promise<LoadedRows> {
  const coll = await Collection.open(uri);
  try {
    const { rows, vectors } = await coll.readAll(where !== undefined ? { where: parseWhere(where) } : undefined);
    if (!rows.length) throw new Error(`${uri}: no rows${where ? ` where ${where}` : ''}`);
    return { rows, vectors, dim: coll.dim, coll, source: uri };
  } catch (e) {
    coll.close();
    throw e;
  }
}

/** Options of {@link embedFileRows}: how to embed, and where the files left out are told. */
export interface EmbedRowsOpts extends Omit<EmbedOpts, 'writer' | 'onSkip'> {
  /** Called once per path that is not an image file, or an image that could not be embedded. */
  onSkip?: (s: Skipped) => void;
}

/**
 * Image files and folders (walked recursively; a file's folder below the root is its label) embedded in memory
 * with the encoder of `checkpoint`, each row with its file's SHA-256, size and mtime. Fails when no image is found.
 */
export async function embedFileRows(
  images: readonly string[],
  checkpoint: string,
  o: EmbedRowsOpts = {},
): Promise<LoadedRows> {
  const found = walkImages(images, { onSkip: o.onSkip }).found;
  const labels = new Map(found.map((f) => [resolve(f.path), f.label]));
  const files = [...labels.keys()];
  if (!files.length) throw new Error(`no image files under ${images.join(', ')}`);
  const e = await embedImagesWith(checkpoint, files, o);
  const rows: FileRow[] = [];
  for (const p of e.paths) rows.push({ id: idOf(p), path: p, label: labels.get(p) ?? null, ...(await fileFacts(p)) });
  return { rows, vectors: e.vectors, dim: e.dim, coll: null, source: images.join(' ') };
}

/**
 * `loaded`'s files embedded again with the encoder of `checkpoint` as `o` says (e.g. the embedding a threshold was
 * chosen on, where a collection holds another); rows whose file could not be embedded are dropped. Returns new
 * rows and vectors; `coll` and `source` are kept.
 */
export async function reembedRows(loaded: LoadedRows, checkpoint: string, o: EmbedRowsOpts = {}): Promise<LoadedRows> {
  const e = await embedImagesWith(
    checkpoint,
    loaded.rows.map((r) => r.path),
    o,
  );
  const at = new Map(e.paths.map((p, i) => [p, i]));
  const rows = loaded.rows.filter((r) => at.has(r.path));
  return {
    ...loaded,
    rows,
    vectors: pickRows(
      e.vectors,
      rows.map((r) => at.get(r.path)!),
      e.dim,
    ),
    dim: e.dim,
  };
}
