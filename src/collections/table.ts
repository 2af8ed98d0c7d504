// A collection: one LanceDB table `images` of {id, path, label, sha256, bytes, mtime, vector} (+ `cluster` once
// `moco cluster` wrote it) at a directory or any URI LanceDB accepts. Rows are keyed by path; an IVF_FLAT index
// (cosine) is built once the table is large enough for it to beat the flat scan. IVF_FLAT keeps the vectors
// uncompressed in its partitions, so scores are exact cosines; IVF_PQ trained ~60× slower here (74 s against
// 1.2 s at 30k rows on 2 busy cores) and needed re-ranking for the same recall.
import type { Connection, Table } from '@lancedb/lancedb';
import type * as Arrow from 'apache-arrow';
import { createHash } from 'node:crypto';
import { trimWhile } from './allocator.js';
import { lanceUri, loadLance, type LanceModules } from './lancedb.js';
import { toSql, type Filter } from './filter.js';

/** The ANN index `ensureIndex` builds unless told otherwise. */
export const DEFAULT_INDEX_KIND: IndexKind = 'IVF_FLAT';

/** The table's name inside the database. */
export const TABLE = 'images';

/**
 * Rows from which an ANN index is built by default: in bench/collections the flat scan's p50 latency passed the
 * index's between 5k and 10k rows (see docs/collections.md).
 */
export const INDEX_MIN_ROWS = 10_000;

/**
 * Rows per LanceDB write in `append` (each write one fragment). A write's transient memory (Arrow IPC copies in
 * JS, LanceDB's encoders) grows with its rows and much of it stays with the allocator: 400k 128-d rows appended in
 * 50k-row writes peaked at 454 MB, 20k at 308 MB, 5k at 223–283 MB (no slower). At 1M rows 2k-row writes made
 * the index build (over 500 fragments) peak at 441 MB against 385 MB with 5k; single runs on 2 shared cores.
 * `moco index` writes 1024 rows at a time anyway.
 */
export const APPEND_ROWS = 5000;

/** One image of a collection. */
export interface ImageRow {
  /** Stable id derived from the path (53 bits of its SHA-256), unique in practice; the key is `path`. */
  id: number;
  path: string;
  /** Folder name in an ImageFolder layout, else null. */
  label: string | null;
  /** SHA-256 of the file's bytes, hex. */
  sha256: string;
  /** File size in bytes. */
  bytes: number;
  /** Modification time, ms since 1970. */
  mtime: number;
  /** L2-normalised embedding. */
  vector: Float32Array;
}

/** A row without its vector (what the file scan compares). */
export type FileRow = Omit<ImageRow, 'vector'> & { cluster?: number | null };

/** What made the vectors: recorded in the table's schema metadata, checked when rows are added. */
export interface CollectionMeta {
  dim: number;
  /** Checkpoint file the vectors were embedded with. */
  pretrained?: string;
  /**
   * SHA-256 of that encoder's weights (`Encoder.weightsSha256`): what `moco index` and `moco search` compare (the file may
   * have moved or been overwritten). Absent in collections made before it was recorded.
   */
  encoderSha256?: string;
  feature?: string;
  /** Vectors are the mean of each image's and its mirror image's features (`--flip`). */
  flip?: boolean;
  /** Vectors also average 90% crops' features (`--crops center|five`); absent: none. */
  crops?: 'center' | 'five';
  arch?: string;
  imageSize?: number;
  augment?: string;
}

/**
 * ANN index kinds `ensureIndex` can build (cosine). Only IVF_FLAT is tested for recall; the others are for the
 * benches (IVF_RQ with refine 10 reached recall@10 0.978 at 20k × 128-d but 0.722 at 20k × 64-d).
 */
export type IndexKind = 'IVF_FLAT' | 'IVF_PQ' | 'IVF_RQ' | 'IVF_HNSW_SQ';

/** Candidates re-ranked on the stored vectors per result for the compressed index kinds (LanceDB's refine factor). */
export const REFINE_FACTOR = 10;

export interface SearchOpts {
  /** Neighbours a query; default 10. */
  top?: number;
  filter?: Filter;
  /** IVF partitions probed; default max(20, 5% of them). Ignored without an index. */
  nprobes?: number;
  /** Re-ranking factor for compressed indexes; default {@link REFINE_FACTOR}. */
  refineFactor?: number;
  /** Exact flat scan even when there is an index (the reference). */
  exact?: boolean;
}

/** How {@link Collection.search} answers a search: the ANN index or an exact scan of the rows the filter keeps. */
export interface SearchPlan {
  /** 'flat' (every matching row scored) or the index kind probed. */
  engine: string;
  /** Rows the filter keeps (all rows without one). */
  matching: number;
  /** IVF partitions probed (null for 'flat'). */
  nprobes: number | null;
}

/**
 * How many times `top` the matching rows in the probed partitions must be, on average, for the index to be used:
 * partitions are uneven, and a filter's rows cluster in some of them, so an expectation of exactly `top` would
 * often come up short.
 */
export const PROBE_MARGIN = 4;

/**
 * The one rule for choosing between the ANN index and an exact scan of the matching rows (the CLI's
 * `search --db` and `/v1/search` both go through it). IVF probes a few partitions, so a filter that keeps few rows,
 * or a `top` near the rows those partitions hold, would return fewer hits than match (a 300-row label in 3000
 * rows gave 234 of 300). Exact when there is no index, when the filter keeps at most `INDEX_MIN_ROWS` rows (below
 * the crossover a flat scan is as fast as the index), or when the probed partitions would hold fewer than
 * `PROBE_MARGIN × top` matching rows on average.
 */
export function planSearch(index: IndexState, matching: number, top: number, nprobes?: number): SearchPlan {
  if (!index.type) return { engine: 'flat', matching, nprobes: null };
  const partitions = Math.max(1, index.partitions ?? 1);
  const probes = nprobes ?? Math.max(20, Math.ceil(partitions * 0.05));
  const expected = matching * Math.min(1, probes / partitions);
  if (matching <= INDEX_MIN_ROWS || expected < PROBE_MARGIN * top) return { engine: 'flat', matching, nprobes: null };
  return { engine: index.type, matching, nprobes: probes };
}

/** One neighbour: the row and its exact cosine similarity. */
export interface CollectionHit extends FileRow {
  score: number;
}

export interface IndexState {
  /** 'IVF_FLAT' or null without an index. */
  type: string | null;
  indexed: number;
  unindexed: number;
  partitions: number | null;
}

/** The stable id of a path. */
export function idOf(path: string): number {
  const h = createHash('sha256').update(path).digest();
  return h.readUIntBE(0, 6) * 32 + (h[6]! >> 3);
}

export class Collection {
  private constructor(
    private readonly m: LanceModules,
    private readonly db: Connection,
    readonly table: Table,
    readonly uri: string,
    readonly meta: CollectionMeta,
    private readonly schema: Arrow.Schema,
  ) {}

  /** Whether `uri` holds a collection. */
  static async exists(uri: string): Promise<boolean> {
    const { lancedb } = await loadLance();
    const db = await lancedb.connect(lanceUri(uri));
    try {
      return (await db.tableNames()).includes(TABLE);
    } finally {
      db.close();
    }
  }

  /**
   * Opens the collection at `uri`; with `create`, creates it when missing (concurrent creators are fine: one
   * wins, the others open it). Throws naming the URI when it is missing and `create` is not given.
   */
  static async open(uri: string, create?: CollectionMeta): Promise<Collection> {
    const m = await loadLance();
    const db = await m.lancedb.connect(lanceUri(uri), {}, session(m));
    try {
      let table: Table;
      if ((await db.tableNames()).includes(TABLE)) table = await db.openTable(TABLE);
      else if (!create)
        throw new Error(
          `${uri}: no collection here (no table '${TABLE}'); make one with \`moco index <images…> --pretrained CKPT --db ${uri}\``,
        );
      else {
        try {
          table = await db.createEmptyTable(TABLE, schemaFor(m.arrow, create), { mode: 'create', existOk: true });
        } catch {
          table = await db.openTable(TABLE);
        }
      }
      const schema = await table.schema();
      const meta = metaOf(schema);
      if (create && create.dim !== meta.dim)
        throw new Error(
          `${uri} holds ${meta.dim}-d vectors but this encoder gives ${create.dim}-d: index into another --db, or use the encoder it was made with (${meta.pretrained ?? 'not recorded'})`,
        );
      return new Collection(m, db, table, uri, meta, schema);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  get dim(): number {
    return this.meta.dim;
  }

  /** Drops the collection at `uri` (its table; the directory stays), if there is one. */
  static async drop(uri: string): Promise<void> {
    const { lancedb } = await loadLance();
    const db = await lancedb.connect(lanceUri(uri));
    try {
      if ((await db.tableNames()).includes(TABLE)) await db.dropTable(TABLE);
    } finally {
      db.close();
    }
  }

  /**
   * Adds to the recorded {@link CollectionMeta} (for facts a collection made by an older moco lacks). LanceDB
   * cannot rewrite a table's schema metadata in place, so additions go to the `vector` field's metadata, which
   * {@link Collection.open} reads over the schema's.
   */
  async recordMeta(add: Partial<CollectionMeta>): Promise<void> {
    const extra = {
      ...(JSON.parse(vectorField(this.schema)?.metadata.get('moco') ?? '{}') as Partial<CollectionMeta>),
      ...add,
    };
    await this.table.updateFieldMetadata([{ path: 'vector', metadata: { moco: JSON.stringify(extra) } }]);
    Object.assign(this.meta, add);
  }

  /** Rows, or rows passing `filter`. */
  async count(filter?: Filter): Promise<number> {
    return this.table.countRows(toSql(filter));
  }

  /**
   * Appends rows whose paths are not in the table (no key check; for new files), at most {@link APPEND_ROWS} per
   * LanceDB write.
   */
  async append(rows: readonly ImageRow[]): Promise<void> {
    for (let i = 0; i < rows.length; i += APPEND_ROWS)
      await trimWhile(() => this.table.add(this.toArrow(rows.slice(i, i + APPEND_ROWS))));
  }

  /** Inserts rows, replacing those with the same path. */
  async upsert(rows: readonly ImageRow[]): Promise<void> {
    if (rows.length)
      await trimWhile(() =>
        this.table.mergeInsert('path').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(this.toArrow(rows)),
      );
  }

  /** Deletes the rows of these paths. */
  async deletePaths(paths: readonly string[]): Promise<void> {
    for (let i = 0; i < paths.length; i += 1000) {
      const sql = toSql({ where: [{ column: 'path', op: 'in', values: paths.slice(i, i + 1000) }] });
      if (sql) await this.table.delete(sql);
    }
  }

  /** Every row without its vector (path order not guaranteed). */
  async files(filter?: Filter): Promise<FileRow[]> {
    const cols = ['id', 'path', 'label', 'sha256', 'bytes', 'mtime', ...(this.hasColumn('cluster') ? ['cluster'] : [])];
    const out: FileRow[] = [];
    let q = this.table.query().select(cols);
    const sql = toSql(filter);
    if (sql) q = q.where(sql);
    for await (const b of q) for (let i = 0; i < b.numRows; i++) out.push(fileRow(b, i));
    return out;
  }

  /**
   * Streams the rows with their vectors in record batches (bounded memory): `vectors` is rows × dim,
   * row-major, a copy the caller owns.
   */
  async *scan(filter?: Filter): AsyncGenerator<{ rows: FileRow[]; vectors: Float32Array }> {
    const cols = [
      'id',
      'path',
      'label',
      'sha256',
      'bytes',
      'mtime',
      'vector',
      ...(this.hasColumn('cluster') ? ['cluster'] : []),
    ];
    let q = this.table.query().select(cols);
    const sql = toSql(filter);
    if (sql) q = q.where(sql);
    for await (const b of q) {
      const rows: FileRow[] = [];
      for (let i = 0; i < b.numRows; i++) rows.push(fileRow(b, i));
      yield { rows, vectors: vectorsOf(b, this.dim) };
    }
  }

  /** All rows and vectors in memory (rows × dim floats: for the tasks that need them all, like k-means). */
  async readAll(filter?: Filter): Promise<{ rows: FileRow[]; vectors: Float32Array }> {
    const rows: FileRow[] = [];
    const parts: Float32Array[] = [];
    for await (const b of this.scan(filter)) {
      rows.push(...b.rows);
      parts.push(b.vectors);
    }
    const vectors = new Float32Array(rows.length * this.dim);
    let off = 0;
    for (const p of parts) {
      vectors.set(p, off);
      off += p.length;
    }
    return { rows, vectors };
  }

  /** The rows of these ids (for thumbnails and lookups). */
  async byIds(ids: readonly number[]): Promise<FileRow[]> {
    if (!ids.length) return [];
    const out: FileRow[] = [];
    const q = this.table
      .query()
      .select(['id', 'path', 'label', 'sha256', 'bytes', 'mtime'])
      .where(`id IN (${ids.map((i) => String(Math.trunc(i))).join(', ')})`);
    for await (const b of q) for (let i = 0; i < b.numRows; i++) out.push(fileRow(b, i));
    return out;
  }

  /** How {@link Collection.search} would answer a search with these options ({@link planSearch}). */
  async searchPlan(o: SearchOpts = {}): Promise<SearchPlan> {
    const matching = await this.count(o.filter);
    if (o.exact) return { engine: 'flat', matching, nprobes: null };
    return planSearch(await this.indexState(), matching, o.top ?? 10, o.nprobes);
  }

  /**
   * The `top` nearest rows of each query (Q × dim, row-major), best first, with exact cosine scores: from the ANN
   * index or an exact scan of the matching rows, as {@link planSearch} decides; either way every query gets
   * min(`top`, matching rows) hits.
   */
  async search(queries: Float32Array, o: SearchOpts = {}): Promise<CollectionHit[][]> {
    const dim = this.dim;
    const nq = queries.length / dim;
    if (!Number.isInteger(nq))
      throw new Error(`search: ${queries.length} query values are not a multiple of the collection's dim ${dim}`);
    const top = o.top ?? 10;
    const sql = toSql(o.filter);
    const plan = await this.searchPlan(o);
    const out: CollectionHit[][] = [];
    const run = async (i: number, exact: boolean): Promise<CollectionHit[]> => {
      let q = this.table
        .vectorSearch(queries.subarray(i * dim, (i + 1) * dim))
        .distanceType('cosine')
        .limit(top)
        .select(['id', 'path', 'label', 'sha256', 'bytes', 'mtime', '_distance']);
      // LanceDB prefilters by default (the filter applies before neighbours are chosen, not to the `top` found);
      // the index still only sees the matching rows of the partitions it probes, hence the plan.
      if (sql) q = q.where(sql);
      if (exact) q = q.bypassVectorIndex();
      else {
        q = q.nprobes(plan.nprobes!);
        // Compressed codes rank candidates; the refine step re-scores them on the stored vectors, so scores are exact cosines.
        if (plan.engine !== 'IVF_FLAT') q = q.refineFactor(o.refineFactor ?? REFINE_FACTOR);
      }
      const hits: CollectionHit[] = [];
      for await (const b of q)
        for (let r = 0; r < b.numRows; r++)
          hits.push({ ...fileRow(b, r), score: 1 - Number(b.getChild('_distance')!.get(r)) });
      return hits.sort((a, b) => b.score - a.score);
    };
    // A query whose probed partitions held too few matching rows (the plan goes by the average) is answered again
    // exactly, so no query comes back short.
    const want = Math.min(top, plan.matching);
    const one = async (i: number): Promise<CollectionHit[]> => {
      if (plan.engine === 'flat') return run(i, true);
      const hits = await run(i, false);
      return hits.length < want ? run(i, true) : hits;
    };
    // Queries go to Lance a few at a time: its multi-vector form costs a scan per vector anyway.
    const width = 4;
    for (let i = 0; i < nq; i += width)
      out.push(...(await Promise.all(Array.from({ length: Math.min(width, nq - i) }, (_, j) => one(i + j)))));
    return out;
  }

  /** The ANN index on `vector`, if any. */
  async indexState(): Promise<IndexState> {
    const idx = (await this.table.listIndices()).find((x) => x.columns.includes('vector'));
    if (!idx) return { type: null, indexed: 0, unindexed: await this.table.countRows(), partitions: null };
    const s = await this.table.indexStats(idx.name);
    const details = s as unknown as { indices?: { num_partitions?: number }[] };
    const indexed = s?.numIndexedRows ?? 0;
    // IVF_FLAT's statistics do not carry the partition count: it is the one ensureIndex chose.
    return {
      type: s?.indexType ?? 'IVF_FLAT',
      indexed,
      unindexed: s?.numUnindexedRows ?? 0,
      partitions: details.indices?.[0]?.num_partitions ?? partitionsFor(indexed),
    };
  }

  /**
   * Builds the IVF_FLAT index (cosine; √rows / 2 partitions, k-means on 64 samples a partition, 20 iterations)
   * when the table has ≥ `minRows` rows and none yet, or always with `rebuild`; otherwise folds new rows into the existing index and compacts. Returns
   * what it did.
   */
  async ensureIndex(
    o: {
      minRows?: number;
      rebuild?: boolean;
      kind?: IndexKind;
      sampleRate?: number;
      maxIterations?: number;
      expectedRows?: number;
    } = {},
  ): Promise<{ action: 'built' | 'optimized' | 'none'; rows: number; ms: number }> {
    const t0 = performance.now();
    await this.refresh();
    const rows = await this.table.countRows();
    const state = await this.indexState();
    const min = o.minRows ?? INDEX_MIN_ROWS;
    if (o.rebuild || (!state.type && rows >= min)) {
      if (rows < 256)
        throw new Error(
          `${this.uri}: ${rows} rows are too few for an ANN index (at least 256; the flat scan serves small tables)`,
        );
      const { Index } = this.m.lancedb;
      const common = {
        numPartitions: partitionsFor(Math.max(rows, o.expectedRows ?? 0)),
        distanceType: 'cosine' as const,
        maxIterations: o.maxIterations ?? 20,
        sampleRate: o.sampleRate ?? 64,
      };
      const kind = o.kind ?? DEFAULT_INDEX_KIND;
      const config =
        kind === 'IVF_PQ'
          ? Index.ivfPq({ ...common, numSubVectors: Math.max(1, Math.floor(this.dim / 8)) })
          : kind === 'IVF_RQ'
            ? Index.ivfRq({ ...common, numBits: 1 })
            : kind === 'IVF_HNSW_SQ'
              ? Index.hnswSq(common)
              : Index.ivfFlat(common);
      // No `optimize` after a fresh build: the index covers every row, and compacting the table's fragments
      // then (rewriting them all and remapping the index) raised the build's peak at 1M rows from 331 to 434 MB.
      // Later calls fold new rows in and compact (below).
      await trimWhile(() => this.table.createIndex('vector', { config, replace: true }));
      return { action: 'built', rows, ms: performance.now() - t0 };
    }
    if (state.type || rows) {
      await trimWhile(() => this.table.optimize());
      return { action: 'optimized', rows, ms: performance.now() - t0 };
    }
    return { action: 'none', rows, ms: performance.now() - t0 };
  }

  /** Writes an int column (e.g. cluster assignments) for the given paths; adds the column when missing. */
  async writeIntColumn(name: 'cluster', paths: readonly string[], values: Int32Array): Promise<void> {
    const { arrow } = this.m;
    if (!this.hasColumn(name)) {
      await this.table.addColumns([{ name, valueSql: 'CAST(NULL AS INT)' }]);
      this.schema.fields.push(new arrow.Field(name, new arrow.Int32(), true));
    }
    const step = 100_000;
    for (let i = 0; i < paths.length; i += step) {
      const t = new arrow.Table({
        path: arrow.vectorFromArray(paths.slice(i, i + step), new arrow.Utf8()),
        [name]: arrow.vectorFromArray(Array.from(values.subarray(i, i + step)), new arrow.Int32()),
      });
      await this.table.mergeInsert('path').whenMatchedUpdateAll().execute(t);
    }
  }

  /**
   * Moves this handle to the table's latest version: a handle sees other processes' commits (the other ranks of
   * `moco index`) only after this, as LanceDB checks for them on reads only when asked to.
   */
  async refresh(): Promise<void> {
    await this.table.checkoutLatest();
  }

  hasColumn(name: string): boolean {
    return this.schema.fields.some((f) => f.name === name);
  }

  close(): void {
    this.table.close();
    this.db.close();
  }

  /** Rows as an Arrow table of this collection's schema (vectors copied once, as one Float32 buffer). */
  private toArrow(rows: readonly ImageRow[]): Arrow.Table {
    const { arrow } = this.m;
    const dim = this.dim;
    const n = rows.length;
    const flat = new Float32Array(n * dim);
    rows.forEach((r, i) => {
      if (r.vector.length !== dim)
        throw new Error(`${r.path}: a ${r.vector.length}-d vector for a ${dim}-d collection`);
      flat.set(r.vector, i * dim);
    });
    const base = schemaFor(arrow, this.meta);
    const vecType = base.fields.find((f) => f.name === 'vector')!.type as Arrow.FixedSizeList;
    const vec = arrow.makeData({
      type: vecType,
      length: n,
      nullCount: 0,
      child: arrow.makeData({ type: new arrow.Float32(), length: n * dim, data: flat }),
    });
    const col = <T extends Arrow.DataType>(vals: unknown[], t: T): Arrow.Data<T> =>
      arrow.vectorFromArray(vals, t).data[0]!;
    const children = [
      col(
        rows.map((r) => BigInt(r.id)),
        new arrow.Int64(),
      ),
      col(
        rows.map((r) => r.path),
        new arrow.Utf8(),
      ),
      col(
        rows.map((r) => r.label),
        new arrow.Utf8(),
      ),
      col(
        rows.map((r) => r.sha256),
        new arrow.Utf8(),
      ),
      col(
        rows.map((r) => BigInt(r.bytes)),
        new arrow.Int64(),
      ),
      col(
        rows.map((r) => r.mtime),
        new arrow.Float64(),
      ),
      vec,
    ];
    const struct = arrow.makeData({ type: new arrow.Struct(base.fields), length: n, nullCount: 0, children });
    return new arrow.Table(base, new arrow.RecordBatch(base, struct));
  }
}

/**
 * Bytes of LanceDB's index cache and metadata cache (its defaults are 6 GB and 1 GB, which an index build and
 * the queries after it fill with the whole index: at 1M rows that alone passed the size of the vectors).
 * `MOCO_LANCE_CACHE_MB` overrides both.
 */
export const LANCE_CACHE_BYTES = 64 * 2 ** 20;

let sharedSession: unknown = null;
function session(m: LanceModules): InstanceType<LanceModules['lancedb']['Session']> {
  const mb = Number(process.env.MOCO_LANCE_CACHE_MB);
  const bytes = BigInt(Number.isFinite(mb) && mb > 0 ? Math.round(mb * 2 ** 20) : LANCE_CACHE_BYTES);
  sharedSession ??= new m.lancedb.Session(bytes, bytes);
  return sharedSession as InstanceType<LanceModules['lancedb']['Session']>;
}

/** IVF partitions for a table of `rows`: √rows / 2 (500 at 1M rows, ~4000 rows each). */
function partitionsFor(rows: number): number {
  return Math.max(1, Math.round(Math.sqrt(rows) / 2));
}

function schemaFor(arrow: typeof Arrow, meta: CollectionMeta): Arrow.Schema {
  return new arrow.Schema(
    [
      new arrow.Field('id', new arrow.Int64(), false),
      new arrow.Field('path', new arrow.Utf8(), false),
      new arrow.Field('label', new arrow.Utf8(), true),
      new arrow.Field('sha256', new arrow.Utf8(), false),
      new arrow.Field('bytes', new arrow.Int64(), false),
      new arrow.Field('mtime', new arrow.Float64(), false),
      new arrow.Field(
        'vector',
        new arrow.FixedSizeList(meta.dim, new arrow.Field('item', new arrow.Float32(), true)),
        false,
      ),
    ],
    new Map([['moco', JSON.stringify(meta)]]),
  );
}

function vectorField(s: Arrow.Schema): Arrow.Field | undefined {
  return s.fields.find((x) => x.name === 'vector');
}

function vectorDim(s: Arrow.Schema): number {
  return (vectorField(s)?.type as Arrow.FixedSizeList | undefined)?.listSize ?? 0;
}

/** The recorded {@link CollectionMeta}: the schema's, with the additions of {@link Collection.recordMeta}. */
function metaOf(s: Arrow.Schema): CollectionMeta {
  const raw = s.metadata.get('moco');
  const added = vectorField(s)?.metadata.get('moco');
  return {
    ...(raw ? (JSON.parse(raw) as CollectionMeta) : { dim: vectorDim(s) }),
    ...(added ? (JSON.parse(added) as Partial<CollectionMeta>) : {}),
  };
}

function fileRow(b: Arrow.RecordBatch, i: number): FileRow {
  const g = (name: string): unknown => b.getChild(name)?.get(i);
  const cl = b.getChild('cluster');
  return {
    id: Number(g('id')),
    path: String(g('path')),
    label: (g('label') as string | null) ?? null,
    sha256: String(g('sha256')),
    bytes: Number(g('bytes')),
    mtime: Number(g('mtime')),
    ...(cl ? { cluster: (cl.get(i) as number | null) ?? null } : {}),
  };
}

function vectorsOf(b: Arrow.RecordBatch, dim: number): Float32Array {
  const out = new Float32Array(b.numRows * dim);
  let off = 0;
  // A FixedSizeList's values are its child's, which arrow-js slices along with the list (child.offset).
  for (const d of b.getChild('vector')!.data) {
    const child = d.children[0]!;
    out.set((child.values as Float32Array).subarray(child.offset, child.offset + d.length * dim), off);
    off += d.length * dim;
  }
  return out;
}
