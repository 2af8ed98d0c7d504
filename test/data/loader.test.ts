// Loader: determinism from (seed, epoch, batch, rank), resume at a batch, distributed disjointness, dropLast,
// the sequential eval variant, and the file path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { memory } from '../../src/torch/index.js';
import { Synthetic, ImageFolder } from '../../src/data/datasets/index.js';
import { Loader, type Batch } from '../../src/data/loader.js';
import { Augmentation } from '../../src/data/augment.js';
import { Rng } from '../../src/data/rng.js';
import { tmpDir } from '../helpers/pytorch.js';

async function collect(
  l: Loader,
  epoch: number,
  startBatch = 0,
): Promise<{ idx: number[][]; q: Float32Array[]; k: Float32Array[] }> {
  const out = { idx: [] as number[][], q: [] as Float32Array[], k: [] as Float32Array[] };
  for await (const b of l.epoch(epoch, { startBatch })) {
    out.idx.push([...b.indices]);
    out.q.push(b.views[0]!.data() as Float32Array);
    if (b.views[1]) out.k.push(b.views[1].data() as Float32Array);
    b.dispose();
  }
  return out;
}

const ds = new Synthetic({ n: 100, seed: 1 });

test('same seed → identical batches; another epoch or seed → different; q ≠ k', async () => {
  const mk = (seed: number): Loader =>
    new Loader(ds, { batchSize: 16, shuffle: true, dropLast: true, seed, augment: 'cifar', twoCrops: true });
  const a = await collect(mk(7), 2);
  const b = await collect(mk(7), 2);
  assert.equal(a.idx.length, 6);
  assert.deepEqual(a.idx, b.idx);
  assert.deepEqual(a.q, b.q);
  assert.deepEqual(a.k, b.k);
  assert.notDeepEqual(a.q[0], a.k[0]);
  const c = await collect(mk(7), 3);
  assert.notDeepEqual(c.idx, a.idx);
  const d = await collect(mk(8), 2);
  assert.notDeepEqual(d.q[0], a.q[0]);
  // Resuming at batch 4 gives batches 4 and 5 exactly.
  const r = await collect(mk(7), 2, 4);
  assert.deepEqual(r.idx, a.idx.slice(4));
  assert.deepEqual(r.q, a.q.slice(4));
});

test('batch tensors: shapes, labels, no leak', async () => {
  const before = memory().tensors;
  const l = new Loader(ds, { batchSize: 32, shuffle: true, dropLast: false, augment: 'cifar', twoCrops: true });
  assert.equal(l.batchesPerEpoch, 4);
  let last: Batch | null = null;
  for await (const b of l.epoch(0)) {
    assert.equal(b.views.length, 2);
    assert.deepEqual(b.views[0]!.shape, [b.indices.length, 3, 32, 32]);
    assert.equal(b.views[0]!.dtype, 'float32');
    assert.equal(b.labels!.dtype, 'int64');
    assert.deepEqual(
      b.labels!.toArray(),
      [...b.indices].map((i) => ds.labels![i]!),
    );
    last?.dispose();
    last = b;
  }
  assert.equal(last!.indices.length, 4);
  last!.dispose();
  assert.equal(memory().tensors, before);
});

test('distributed: ranks see disjoint parts covering the epoch, same count each', async () => {
  const seen: number[] = [];
  for (let rank = 0; rank < 3; rank++) {
    const l = new Loader(ds, {
      batchSize: 8,
      shuffle: true,
      dropLast: true,
      seed: 1,
      rank,
      worldSize: 3,
      augment: 'cifar-eval',
    });
    assert.equal(l.samplesPerRank, 33);
    assert.equal(l.batchesPerEpoch, 4);
    const order = l.order(5);
    assert.equal(order.length, 33);
    seen.push(...order);
  }
  assert.equal(new Set(seen).size, 99);
  const l = new Loader(ds, { batchSize: 8, shuffle: true, rank: 1, worldSize: 3 });
  assert.equal(l.samplesPerRank, 34); // padded by wrapping, as DistributedSampler
});

test('sequential eval variant: every sample once, in order, unaugmented', async () => {
  const l = new Loader(ds, { batchSize: 30, shuffle: false, dropLast: false, augment: 'cifar-eval' });
  const r = await collect(l, 0);
  assert.deepEqual(
    r.idx.flat(),
    Array.from({ length: 100 }, (_, i) => i),
  );
  const again = await collect(new Loader(ds, { batchSize: 30, shuffle: false, augment: 'cifar-eval', seed: 99 }), 4);
  assert.deepEqual(again.q, r.q);
  // cifar-eval is normalisation only: undo it and compare with the uint8 pixels.
  const px = ds.images.narrow(0, 0, 1).float().div(255).toArray();
  const mean = [0.4914, 0.4822, 0.4465],
    std = [0.2023, 0.1994, 0.201];
  const got = Array.from(
    r.q[0]!.subarray(0, 3 * 32 * 32),
    (v, i) => v * std[Math.floor(i / 1024)]! + mean[Math.floor(i / 1024)]!,
  );
  assert.ok(got.every((v, i) => Math.abs(v - px[i]!) < 1e-5));
});

test('file datasets: decode with crop in sharp, deterministic, prefetched', async () => {
  const dir = tmpDir('moco-loader-');
  try {
    for (const c of ['a', 'b']) {
      mkdirSync(join(dir, c));
      for (let i = 0; i < 6; i++) {
        await sharp({
          create: {
            width: 60 + 7 * i,
            height: 45,
            channels: 3,
            background: { r: 40 * i, g: c === 'a' ? 200 : 20, b: 90 },
          },
        })
          .jpeg()
          .toFile(join(dir, c, `${i}.jpg`));
      }
    }
    const mk = (): Loader =>
      new Loader(new ImageFolder(dir), {
        batchSize: 5,
        shuffle: true,
        dropLast: true,
        seed: 3,
        augment: 'mocov2',
        augmentOpts: { size: 24 },
        twoCrops: true,
        prefetch: 2,
      });
    const l = mk();
    assert.equal((await l.prepare()).kind, 'files'); // sizes differ: stays on disk
    const a = await collect(l, 1);
    const b = await collect(mk(), 1);
    assert.equal(a.q.length, 2);
    assert.equal(a.q[0]!.length, 5 * 3 * 24 * 24);
    assert.deepEqual(a.q, b.q);
    assert.deepEqual(a.k, b.k);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('worker threads build the same batches as the calling thread', async () => {
  const run = async (workers: number): Promise<Float32Array[]> => {
    const l = new Loader(ds, {
      batchSize: 32,
      shuffle: true,
      dropLast: true,
      seed: 5,
      augment: 'cifar',
      twoCrops: true,
      workers,
    });
    const out: Float32Array[] = [];
    for await (const b of l.epoch(1)) {
      out.push(b.views[1]!.data() as Float32Array);
      assert.equal(b.labels!.shape[0], 32);
      b.dispose();
    }
    await l.close();
    return out;
  };
  const a = await run(0);
  const b = await run(2);
  assert.equal(b.length, 3);
  assert.deepEqual(b, a);
});

test('a cached folder is read from the cache file a batch at a time: not resident, the same batches as in memory', async () => {
  const dir = tmpDir('moco-loader-cache-');
  const prev = process.env.MOCO_CACHE_DIR;
  process.env.MOCO_CACHE_DIR = join(dir, 'cache');
  try {
    const root = join(dir, 'imgs');
    for (const c of ['a', 'b']) {
      mkdirSync(join(root, c), { recursive: true });
      for (let i = 0; i < 40; i++) {
        await sharp({
          create: { width: 32, height: 32, channels: 3, background: { r: 6 * i, g: c === 'a' ? 200 : 20, b: 3 * i } },
        })
          .png()
          .toFile(join(root, c, `${i}.png`));
      }
    }
    const run = async (
      cache: boolean,
      workers: number,
    ): Promise<{ q: Float32Array[]; k: Float32Array[]; resident: number }> => {
      const ds = new ImageFolder(root);
      const l = new Loader(ds, {
        batchSize: 16,
        shuffle: true,
        dropLast: true,
        seed: 7,
        augment: 'cifar',
        twoCrops: true,
        workers,
        prepare: { cache },
      });
      const before = memory().bytes;
      assert.equal((await l.prepare()).kind, 'decoded');
      const resident = memory().bytes - before;
      const out = await collect(l, 2);
      await l.close();
      ds.dispose();
      return { q: out.q, k: out.k, resident };
    };
    const inMemory = await run(false, 0);
    const first = await run(true, 0); // writes the cache, then reads from it
    const again = await run(true, 2); // a cache hit, through the worker threads
    assert.equal(inMemory.resident, 80 * 3 * 32 * 32, 'uncached: the decoded tensor is held');
    assert.equal(first.resident, 0, 'cached: no decoded tensor is held');
    assert.equal(again.resident, 0);
    assert.equal(first.q.length, 5);
    assert.deepEqual(first.q, inMemory.q);
    assert.deepEqual(first.k, inMemory.k);
    assert.deepEqual(again.q, inMemory.q);
    assert.deepEqual(again.k, inMemory.k);
  } finally {
    if (prev === undefined) delete process.env.MOCO_CACHE_DIR;
    else process.env.MOCO_CACHE_DIR = prev;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('twoCrops with an asymmetric pair (mocov3-cifar): view 1 by pipeline 1, view 2 by pipeline 2, keyed by (seed, epoch, batch); workers agree', async () => {
  const run = async (workers: number): Promise<{ idx: number[][]; q: Float32Array[]; k: Float32Array[] }> => {
    const l = new Loader(ds, {
      batchSize: 16,
      shuffle: true,
      dropLast: true,
      seed: 9,
      augment: 'mocov3-cifar',
      twoCrops: true,
      workers,
    });
    const out = await collect(l, 1);
    await l.close();
    return out;
  };
  const a = await run(0);
  assert.deepEqual(await run(2), a);
  const aug = new Augmentation('mocov3-cifar');
  const sym = new Augmentation({ ...aug.spec, view2: null });
  for (const b of [0, 3]) {
    const idx = Int32Array.from(a.idx[b]!);
    const [q, k] = aug.fromMemory(ds.images, idx, new Rng(9, 'aug', 1, b, 0), 2);
    assert.deepEqual(q!.data(), a.q[b]);
    assert.deepEqual(k!.data(), a.k[b]);
    // The symmetric pipeline shares view 1 and not view 2.
    const [q2, k2] = sym.fromMemory(ds.images, idx, new Rng(9, 'aug', 1, b, 0), 2);
    assert.deepEqual(q2!.data(), a.q[b]);
    assert.notDeepEqual(k2!.data(), a.k[b]);
    for (const t of [q, k, q2, k2]) t!.dispose();
  }
});
