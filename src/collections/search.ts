// Search by query images: the images are embedded with the encoder that made the vectors (as recorded, or
// `pretrained`), searched by cosine in an embedding file (exact, eval/search.ts) or a collection (ANN or flat,
// table.ts), and among each query's first hits its near-exact copies (pHash) rank first.
import { existsSync } from 'node:fs';
import type { Skipped } from '../data/walk.js';
import { walkImages } from '../data/walk.js';
import {
  EmbeddingIndex,
  describeEncoder,
  embedImages,
  loadEncoder,
  searchIndex,
  type Embedded,
  type Encoder,
  type Neighbour,
} from '../eval/index.js';
import { Collection, type CollectionHit, type SearchPlan } from './table.js';
import { parseWhere } from './filter.js';
import { DEFAULT_HASH_DISTANCE, promoteNearCopyFiles, type PHash } from './phash.js';

export interface SearchImagesOpts {
  /** Encoder checkpoint for the queries; default the one the vectors record (`--pretrained`). */
  pretrained?: string;
  /** Neighbours a query; default 10. */
  top?: number;
  /** Query images a forward pass; default embedImages' (32). */
  batchSize?: number;
  /**
   * Among the first `nearCopies` hits, near-exact copies of the query (pHash within `hashDistance` bits) rank
   * first; 0 ranks by cosine alone. Default 50.
   */
  nearCopies?: number;
  /** Largest pHash distance of a near-exact copy, in bits (0…63); default {@link DEFAULT_HASH_DISTANCE}. */
  hashDistance?: number;
  /** Told of each query file that is not an image or cannot be decoded (it is left out). */
  onSkip?: (s: Skipped) => void;
  /** Told the encoder in use and warnings, one line each. */
  onLog?: (line: string) => void;
  /** Embedding files over 100,000 rows: called after each chunk with (rows done, total rows). */
  onProgress?: (done: number, total: number) => void;
}

/** The neighbours of each query image, best first (`hashDistance` set on near-exact copies moved up). */
export interface ImageSearch<H> {
  /** The query images embedded, in order; `results[i]` are the neighbours of `queries[i]`. */
  queries: string[];
  results: (H & { hashDistance?: number })[][];
  /** Query files left out, with the reason. */
  skipped: Skipped[];
}

/** Checks `nearCopies` and `hashDistance`, naming their flags. */
function nearCopyOpts(o: SearchImagesOpts): { pool: number; maxDistance: number } {
  const pool = o.nearCopies ?? 50;
  const maxDistance = o.hashDistance ?? DEFAULT_HASH_DISTANCE;
  if (!(Number.isInteger(pool) && pool >= 0))
    throw new Error(`--near-copies must be a whole number ≥ 0, got '${pool}'`);
  if (!(Number.isInteger(maxDistance) && maxDistance >= 0 && maxDistance <= 63))
    throw new Error(`--hash-distance must be a whole number of bits from 0 to 63, got '${maxDistance}'`);
  return { pool, maxDistance };
}

/** Each query's hits with its near-exact copies first, cut to `top`; hit files are hashed once for all queries. */
async function promoteAll<H extends { path: string }>(
  queries: string[],
  hits: H[][],
  top: number,
  near: { pool: number; maxDistance: number },
): Promise<(H & { hashDistance?: number })[][]> {
  const cache = new Map<string, Promise<PHash | null>>();
  return Promise.all(
    hits.map(async (hs, i) => (await promoteNearCopyFiles(queries[i]!, hs, { ...near, cache })).slice(0, top)),
  );
}

/** The query images embedded with the encoder that made the vectors (or `o.pretrained`). */
async function embedQueries(
  queries: readonly string[],
  o: SearchImagesOpts,
  made: {
    pretrained: string | undefined;
    unrecorded: string;
    feature: 'backbone' | 'head' | 'regions';
    flip: boolean;
    crops?: 'center' | 'five';
    check?: (e: Encoder) => void;
  },
): Promise<Embedded> {
  const ckpt = o.pretrained ?? made.pretrained;
  if (!ckpt) throw new Error(`${made.unrecorded}; pass --pretrained`);
  if (!existsSync(ckpt)) throw new Error(`the encoder ${ckpt} the vectors were made with is gone; pass --pretrained`);
  const files = walkImages(queries, { onSkip: o.onSkip }).found.map((f) => f.path);
  if (!files.length) throw new Error('no query images found');
  const encoder = loadEncoder(ckpt);
  try {
    o.onLog?.(describeEncoder(encoder));
    made.check?.(encoder);
    return await embedImages(encoder, files, {
      feature: made.feature,
      flip: made.flip,
      ...(made.crops ? { crops: { kind: made.crops } } : {}),
      batchSize: o.batchSize,
      onSkip: o.onSkip,
    });
  } finally {
    encoder.dispose();
  }
}

/**
 * Exact cosine search of query images (files or folders) in an embedding file from `moco embed`, embedded with
 * the encoder, feature, flip and crops the file records.
 */
export async function searchImagesInFile(
  indexFile: string,
  queries: readonly string[],
  o: SearchImagesOpts = {},
): Promise<ImageSearch<Neighbour>> {
  const top = o.top ?? 10;
  const near = nearCopyOpts(o);
  const index = EmbeddingIndex.open(indexFile);
  try {
    const m = index.meta;
    const q = await embedQueries(queries, o, {
      pretrained: m.pretrained,
      unrecorded: `${indexFile} does not record its encoder`,
      feature: m.feature ?? 'backbone',
      flip: m.flip === true,
      crops: m.crops === 'center' || m.crops === 'five' ? m.crops : undefined,
    });
    if (q.dim !== index.dim)
      throw new Error(
        `queries are ${q.dim}-d but the index is ${index.dim}-d: pass the --pretrained the index was made with`,
      );
    const wide = searchIndex(index, q.vectors, {
      top: Math.max(top, near.pool),
      onProgress: index.count > 1e5 ? o.onProgress : undefined,
    });
    return { queries: q.paths, results: await promoteAll(q.paths, wide, top, near), skipped: q.skipped };
  } finally {
    index.close();
  }
}

/** A collection hit as a search result: its row id as `index`, besides path, score and label. */
export type CollectionNeighbour = Neighbour & { label: CollectionHit['label'] };

/**
 * Search of query images in a LanceDB collection from `moco index`: the ANN index when it has one and the plan
 * allows (table.ts planSearch), else every matching row. Refuses queries embedded by other weights than the
 * collection's (their scores against its vectors would mean nothing).
 */
export async function searchImagesInCollection(
  uri: string,
  queries: readonly string[],
  o: SearchImagesOpts & {
    /** Structured filter (filter.ts parseWhere), e.g. `label = 'cat'`; default all rows. */
    where?: string;
    /** Flat scan even when there is an ANN index; default false. */
    exact?: boolean;
  } = {},
): Promise<ImageSearch<CollectionNeighbour> & { plan: SearchPlan }> {
  const top = o.top ?? 10;
  const near = nearCopyOpts(o);
  const filter = o.where !== undefined ? { where: parseWhere(o.where) } : undefined;
  const coll = await Collection.open(uri);
  try {
    const m = coll.meta;
    const q = await embedQueries(queries, o, {
      pretrained: m.pretrained,
      unrecorded: `${uri} does not record its encoder`,
      feature: m.feature === 'head' || m.feature === 'regions' ? m.feature : 'backbone',
      flip: m.flip === true,
      crops: m.crops,
      check: (enc) => checkCollectionEncoder(uri, m, enc, o),
    });
    if (q.dim !== coll.dim)
      throw new Error(
        `queries are ${q.dim}-d but the collection is ${coll.dim}-d: pass the --pretrained it was made with`,
      );
    const plan = await coll.searchPlan({ top, filter, exact: o.exact });
    const hits = await coll.search(q.vectors, { top: Math.max(top, near.pool), filter, exact: o.exact });
    const rows = hits.map((hs) => hs.map((h) => ({ index: h.id, path: h.path, score: h.score, label: h.label })));
    return { queries: q.paths, results: await promoteAll(q.paths, rows, top, near), skipped: q.skipped, plan };
  } finally {
    coll.close();
  }
}

/** Another encoder's queries against these vectors would rank by meaningless scores, however alike the dims. */
function checkCollectionEncoder(
  uri: string,
  meta: { pretrained?: string; encoderSha256?: string },
  enc: Encoder,
  o: SearchImagesOpts,
): void {
  const have = meta.encoderSha256;
  const mine = enc.weightsSha256();
  if (!have)
    o.onLog?.(
      `warning: --db ${uri} does not record which weights made its vectors (it was made by an older moco), so the query encoder ${enc.info.file} cannot be checked against them; \`moco index\` on it records them`,
    );
  else if (have !== mine)
    throw new Error(
      `--db ${uri}: its vectors were made by the encoder ${meta.pretrained ?? '(path not recorded)'} (weights sha256 ${have.slice(0, 12)}…), but the queries would be embedded with ${enc.info.file} (weights sha256 ${mine.slice(0, 12)}…): drop --pretrained to use the collection's encoder, or re-embed the collection with this one (\`moco index <images…> --pretrained ${o.pretrained ?? enc.info.file} --db ${uri} --reembed\`)`,
    );
}
