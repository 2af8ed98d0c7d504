// One synthetic collection for bench/collections, run as its own process so that its peak RSS is measured alone:
// `rows` clustered unit vectors (`dim`, 1000 centres) streamed into LanceDB in record batches of `chunk` rows
// (never one array; every 50th a near-copy of its predecessor), the IVF_FLAT index built, then query latency (p50/p99) of the ANN index and of the flat scan
// and the ANN's recall@10 against the flat scan (exact). Optionally the dedup time over the collection.
//   node dist/bench/collections-synth.js --rows 100000 --dim 128 --queries 200 [--dedup] [--build-only] [--trace]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
// table.js only: the index/search part must not load libtorch, so that its peak RSS is LanceDB's and ours.
import { Collection, idOf, type ImageRow, type IndexKind } from '../src/collections/table.js';
import { mallocStats } from '../src/collections/allocator.js';
import { round } from './common.js';

const { values: a } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    dim: { type: 'string', default: '128' },
    queries: { type: 'string', default: '200' },
    'flat-queries': { type: 'string', default: '50' },
    chunk: { type: 'string', default: '20000' },
    dedup: { type: 'boolean', default: false },
    'no-index': { type: 'boolean', default: false },
    kind: { type: 'string' },
    'sample-rate': { type: 'string' },
    'build-only': { type: 'boolean', default: false },
    keep: { type: 'string' },
    incremental: { type: 'string' },
    trace: { type: 'boolean', default: false },
  },
});
// --trace: the process's memory (RSS and V8's heap, external and ArrayBuffer bytes, glibc malloc's heap and its
// free part, MB) on stderr as it goes.
const T0 = performance.now();
const trace = (phase: string): void => {
  if (!a.trace) return;
  const m = process.memoryUsage();
  const ms = mallocStats();
  const mb = (x: number): number => Math.round(x / 2 ** 20);
  console.error(
    JSON.stringify({
      phase,
      s: round((performance.now() - T0) / 1000, 1),
      rssMB: mb(m.rss),
      maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      heapMB: mb(m.heapUsed),
      externalMB: mb(m.external),
      arrayBuffersMB: mb(m.arrayBuffers),
      mallocArenaMB: mb(ms?.arena ?? 0),
      mallocFreeMB: mb(ms?.free ?? 0),
    }),
  );
};
const rows = Number(a.rows);
const dim = Number(a.dim);
const nq = Number(a.queries);
const nFlat = Math.min(nq, Number(a['flat-queries']));
const chunk = Number(a.chunk);
const incremental = Number(a.incremental ?? 0);
const kind = a.kind as IndexKind | undefined;
let incrementalMs = 0;

// A seeded clustered set: 1000 centres, each vector a centre plus noise (so neighbours are meaningful).
let s = 12345;
const rnd = (): number => {
  s ^= s << 13;
  s >>>= 0;
  s ^= s >>> 17;
  s ^= s << 5;
  s >>>= 0;
  return s / 2 ** 32;
};
const gauss = (): number => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
const CENTRES = 1000;
const centres = Float32Array.from({ length: CENTRES * dim }, gauss);
// Every 50th vector is a near-copy of the one before it (cosine ≈ 0.999): planted duplicates for the dedup timing.
function vec(out: Float32Array, off: number, copyOf?: number): void {
  if (copyOf !== undefined) {
    let n = 0;
    for (let j = 0; j < dim; j++) {
      const v = out[copyOf + j]! + (0.03 * gauss()) / Math.sqrt(dim);
      out[off + j] = v;
      n += v * v;
    }
    n = Math.sqrt(n);
    for (let j = 0; j < dim; j++) out[off + j]! /= n;
    return;
  }
  const c = Math.floor(rnd() * CENTRES);
  let n = 0;
  for (let j = 0; j < dim; j++) {
    const v = centres[c * dim + j]! + 0.7 * gauss();
    out[off + j] = v;
    n += v * v;
  }
  n = Math.sqrt(n);
  for (let j = 0; j < dim; j++) out[off + j]! /= n;
}

const pct = (xs: number[], p: number): number => {
  const t = [...xs].sort((x, y) => x - y);
  return t[Math.min(t.length - 1, Math.floor(p * t.length))]!;
};
// --keep DIR: write the collection there and leave it (to time index builds on it alone).
const dir = a.keep ?? mkdtempSync(join(tmpdir(), 'moco-bench-coll-'));
const drop = (): void => {
  if (!a.keep) rmSync(dir, { recursive: true, force: true });
};
try {
  const coll = await Collection.open(join(dir, 'db'), { dim });
  trace('opened');
  const t0 = performance.now();
  for (let i = 0; i < rows; i += chunk) {
    const n = Math.min(chunk, rows - i);
    const flat = new Float32Array(n * dim);
    const batch: ImageRow[] = [];
    for (let j = 0; j < n; j++) {
      vec(flat, j * dim, j > 0 && (i + j) % 50 === 0 ? (j - 1) * dim : undefined);
      const path = `/synthetic/${i + j}.jpg`;
      batch.push({
        id: idOf(path),
        path,
        label: `c${(i + j) % 10}`,
        sha256: String(i + j),
        bytes: 1000 + ((i + j) % 97),
        mtime: i + j,
        vector: flat.subarray(j * dim, (j + 1) * dim),
      });
    }
    await coll.append(batch);
    if ((i / chunk) % 10 === 9) trace(`append ${i + n}`);
    // --incremental N: the index is built once N rows are in (partitions sized for the final row count) and
    // folded forward with optimize every N rows after, as `moco index` does, instead of one build at the end.
    if (incremental && (i + n) % incremental === 0 && i + n < rows) {
      const t = performance.now();
      await coll.ensureIndex({ minRows: incremental, expectedRows: rows, kind });
      incrementalMs += performance.now() - t;
    }
  }
  const appendS = (performance.now() - t0) / 1000 - incrementalMs / 1000;
  trace('appended');
  let built = a['no-index']
    ? null
    : await coll.ensureIndex({
        rebuild: !incremental,
        minRows: incremental || undefined,
        expectedRows: rows,
        kind,
        sampleRate: a['sample-rate'] ? Number(a['sample-rate']) : undefined,
      });
  if (built) built = { ...built, ms: built.ms + incrementalMs };
  trace('indexed');
  // Peak RSS of writing and indexing (before the queries, whose flat scans read the whole table).
  const indexPeakMB = Math.round(process.resourceUsage().maxRSS / 1024);
  if (a['build-only']) {
    // Peak RSS of writing and indexing alone (the queries' flat scans read the whole table).
    coll.close();
    console.log(
      JSON.stringify({
        rows,
        dim,
        appendS: round(appendS, 2),
        indexBuildS: built ? round(built.ms / 1000, 2) : null,
        vectorBytes: rows * dim * 4,
        indexPeakMB,
        kind: kind ?? null,
        incremental: incremental || null,
      }),
    );
    drop();
    process.exit(0);
  }
  const q = new Float32Array(nq * dim);
  for (let i = 0; i < nq; i++) vec(q, i * dim);
  const lat = async (exact: boolean, n: number): Promise<{ ms: number[]; ids: number[][] }> => {
    const ms: number[] = [];
    const ids: number[][] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const h = await coll.search(q.subarray(i * dim, (i + 1) * dim), { top: 10, exact });
      ms.push(performance.now() - t);
      ids.push(h[0]!.map((x) => x.id));
    }
    return { ms, ids };
  };
  const flat = await lat(true, nFlat);
  const ann = built ? await lat(false, nq) : null;
  let recall: number | null = null;
  if (ann) {
    let hit = 0;
    flat.ids.forEach((ref, i) => {
      const want = new Set(ref);
      for (const id of ann.ids[i]!) if (want.has(id)) hit++;
    });
    recall = hit / (nFlat * 10);
  }
  let dedup: Record<string, number> | null = null;
  if (a.dedup) {
    const td = performance.now();
    const all = await coll.readAll();
    const readS = (performance.now() - td) / 1000;
    const { findDuplicates } = await import('../src/collections/dedup.js');
    const r = await findDuplicates(all.rows, all.vectors, dim, { threshold: 0.95 });
    dedup = {
      readS: round(readS, 2),
      totalS: round((performance.now() - td) / 1000, 2),
      groups: r.groups.length,
      removable: r.removable,
    };
  }
  coll.close();
  console.log(
    JSON.stringify({
      rows,
      dim,
      appendS: round(appendS, 2),
      indexBuildS: built ? round(built.ms / 1000, 2) : null,
      flat: { p50Ms: round(pct(flat.ms, 0.5), 2), p99Ms: round(pct(flat.ms, 0.99), 2), queries: nFlat },
      ann: ann
        ? {
            p50Ms: round(pct(ann.ms, 0.5), 2),
            p99Ms: round(pct(ann.ms, 0.99), 2),
            queries: nq,
            recallAt10: round(recall!, 4),
          }
        : null,
      dedup,
      vectorBytes: rows * dim * 4,
      indexPeakMB,
      kind: kind ?? null,
      incremental: incremental || null,
    }),
  );
} finally {
  drop();
}
