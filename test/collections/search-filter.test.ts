// Filtered search on an indexed collection returns every matching row up to `top`: `moco search --db --where`
// and `/v1/search`'s collection backend on 3000 CIFAR-10 images (300 a class) with an IVF index, and the one rule
// that chooses the ANN index or the exact scan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { INDEX_MIN_ROWS, planSearch, type IndexState } from '../../src/collections/index.js';
import { LanceBackend } from '../../src/serve/lance-backend.js';
import { tmpDir } from '../helpers/pytorch.js';
import { CLI, cifarFolder, randomEncoder } from './fixtures.js';

const moco = (args: string[]): Record<string, unknown> => {
  const out = execFileSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MOCO_NO_CACHE: '1' },
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
};

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

test("search --db --where on an indexed 3000-row collection: all 300 cats for --top 1000, in the exact order; /v1/search's backend too", async () => {
  const dir = tmpDir();
  try {
    const img = join(dir, 'img');
    assert.equal(cifarFolder(img, CLASSES, 300), 3000);
    const ckpt = randomEncoder(join(dir, 'enc.safetensors'));
    const db = join(dir, 'db');
    const ix = moco(['index', img, '--pretrained', ckpt, '--db', db, '--index-min-rows', '1000', '--batch', '128']);
    assert.equal((ix.index as IndexState).type, 'IVF_FLAT');
    const q = join(img, 'dog', '0000.jpg');
    const where = ['--where', "label = 'cat'"];
    const ann = moco(['search', '--db', db, '--query', q, '--top', '1000', ...where]);
    const exact = moco(['search', '--db', db, '--query', q, '--top', '1000', ...where, '--exact']);
    const got = (ann.results as { neighbours: { path: string; label: string }[] }[])[0]!.neighbours;
    const ref = (exact.results as { neighbours: { path: string }[] }[])[0]!.neighbours;
    assert.equal(ref.length, 300);
    assert.equal(got.length, 300, 'every matching row up to --top');
    assert.ok(got.every((n) => n.label === 'cat'));
    assert.deepEqual(
      got.map((n) => n.path),
      ref.map((n) => n.path),
    );
    assert.equal(ann.engine, 'flat', 'a selective filter is searched exactly');
    assert.equal(ann.matching, 300);
    // Unfiltered with a small top the index answers.
    assert.equal(
      moco(['search', '--db', db, '--query', q, '--top', '5']).engine,
      'flat',
      `3000 rows are below the ${INDEX_MIN_ROWS}-row crossover`,
    );

    const backend = await LanceBackend.open(db);
    try {
      const qv = new Float32Array(backend.dim);
      qv[0] = 1;
      const [hits] = await backend.search(qv, 1000, { label: 'cat' });
      assert.equal(hits!.length, 300);
      const [two] = await backend.search(qv, 1000, { label: ['cat', 'dog'] });
      assert.equal(two!.length, 600);
    } finally {
      await backend.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('planSearch: exact below the crossover or when the probed partitions would hold too few matches; ANN otherwise', () => {
  const ivf = (rows: number, partitions: number): IndexState => ({
    type: 'IVF_FLAT',
    indexed: rows,
    unindexed: 0,
    partitions,
  });
  assert.equal(planSearch({ type: null, indexed: 0, unindexed: 5e5, partitions: null }, 5e5, 10).engine, 'flat');
  assert.equal(planSearch(ivf(3000, 27), 300, 1000).engine, 'flat');
  assert.equal(planSearch(ivf(1e6, 500), 5000, 10).engine, 'flat', 'a filter keeping 5000 rows');
  const wide = planSearch(ivf(1e6, 500), 1e6, 10);
  assert.deepEqual([wide.engine, wide.nprobes], ['IVF_FLAT', 25]);
  // 25 of 500 partitions hold ~50k rows on average: --top 20000 wants more than a quarter of them.
  assert.equal(planSearch(ivf(1e6, 500), 1e6, 20_000).engine, 'flat');
  assert.equal(planSearch(ivf(1e6, 500), 1e6, 10_000).engine, 'IVF_FLAT');
  assert.equal(planSearch(ivf(1e6, 500), 100_000, 2000).engine, 'flat', 'a filter keeping 10% and a large top');
});
