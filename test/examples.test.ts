// The programs in examples/ run as a user runs them (compiled, in their own process, importing the package by
// its name) and print what they promise: a short pre-training and its kNN accuracy, an embedding file of a
// folder, a LanceDB collection that finds an image's own row first, and the service's /v1/embed vector, which
// equals the embedding file's row for the same image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddingIndex } from '../src/eval/embedding-file.js';
import { repoRoot, tmpDir } from './helpers/pytorch.js';
import { labelledImages } from './serve/fixtures.js';

let dir = '';
let files: string[] = [];
let checkpoint = '';

before(async () => {
  dir = tmpDir('moco-examples-');
  files = await labelledImages(dir, ['red', 'blue'], 4);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a compiled example and returns the JSON of the last line it printed. */
function run(name: string, ...args: string[]): Record<string, any> {
  const out = execFileSync(process.execPath, [join(repoRoot(), 'dist', 'examples', `${name}.js`), ...args], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 240_000,
  });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, any>;
}

test("examples/pretrain-knn: one epoch on synthetic:256, then a kNN top-1 of the run's encoder", () => {
  const r = run('pretrain-knn', join(dir, 'run'));
  assert.equal(r.steps, 8, '256 images in batches of 32');
  assert.ok(Number.isFinite(r.lastLoss), `loss ${r.lastLoss}`);
  assert.ok(existsSync(r.checkpoint), `checkpoint ${r.checkpoint}`);
  assert.equal(r.queries, 51);
  assert.ok(r.knnTop1 >= 0 && r.knnTop1 <= 100, `top-1 ${r.knnTop1}`);
  checkpoint = r.runDir;
});

test('examples/embed-folder: every image of the folder, one 64-d row each', () => {
  assert.ok(checkpoint, 'needs the run of examples/pretrain-knn');
  const r = run('embed-folder', checkpoint, join(dir, 'images'), join(dir, 'emb.npy'));
  assert.deepEqual([r.rows, r.dim, r.skipped], [files.length, 64, 0]);
});

test('examples/collection-search: an image finds its own row first, the label filter keeps its label, a rerun adds nothing', () => {
  assert.ok(checkpoint, 'needs the run of examples/pretrain-knn');
  const args = [checkpoint, join(dir, 'images'), join(dir, 'db')];
  const r = run('collection-search', ...args);
  assert.equal(r.added, files.length);
  assert.equal(r.rows, files.length);
  assert.equal(r.neighbours.length, 3);
  assert.equal(r.neighbours[0].path, r.query);
  assert.ok(Math.abs(r.neighbours[0].score - 1) < 1e-3, `self score ${r.neighbours[0].score}`);
  assert.deepEqual(r.sameLabel, ['blue', 'blue', 'blue']);
  const again = run('collection-search', ...args);
  assert.deepEqual([again.added, again.unchanged, again.rows], [0, files.length, files.length]);
});

test('examples/serve-embed: /v1/embed of an image equals its row in the embedding file', () => {
  assert.ok(checkpoint, 'needs the run of examples/pretrain-knn');
  const r = run('serve-embed', checkpoint, files[5]!);
  assert.match(r.address, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual([r.dim, r.vectors], [64, 1]);
  const index = EmbeddingIndex.open(join(dir, 'emb.npy'));
  try {
    const row = index.paths.indexOf(files[5]!);
    assert.ok(row >= 0, `${files[5]} in the embedding file`);
    const want = Array.from(index.read(row, 1).subarray(0, 3));
    r.head.forEach((v: number, i: number) =>
      assert.ok(Math.abs(v - want[i]!) < 1e-4, `value ${i}: ${v} vs ${want[i]}`),
    );
  } finally {
    index.close();
  }
});
