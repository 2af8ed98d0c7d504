// Spherical mini-batch k-means against a NumPy implementation of the same algorithm (same features, same
// k-means++ init, same batch order) on CIFAR-10 features; greedy k-center coreset against a brute-force check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { tensor } from '../../src/torch/index.js';
import { Rng } from '../../src/data/index.js';
import { loadEncoder } from '../../src/eval/encoder.js';
import { embedImages } from '../../src/eval/embed.js';
import { imagePaths } from '../../src/data/walk.js';
import { batchOrder, kCenterGreedy, purity, sphericalKMeans } from '../../src/collections/index.js';
import { pytorch, tmpDir } from '../helpers/pytorch.js';
import { cifarFolder, clustered, randomEncoder } from './fixtures.js';

const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

test('k-means purity on CIFAR-10 features equals a NumPy reference on the same features, init and batches (within 1 point)', async () => {
  const dir = tmpDir();
  try {
    cifarFolder(join(dir, 'img'), CLASSES, 60);
    // MOCO_TEST_ENCODER: the features of a given (e.g. short pre-trained) checkpoint instead of a random init.
    const enc = loadEncoder(process.env.MOCO_TEST_ENCODER ?? randomEncoder(join(dir, 'enc.safetensors'), 3));
    const e = await embedImages(enc, imagePaths([join(dir, 'img')]), { batchSize: 100 });
    enc.dispose();
    const n = e.paths.length;
    const labels = e.paths.map((p) => p.split('/').slice(-2)[0]!);
    const k = 10;
    const bs = 128;
    const epochs = 5;
    const r = sphericalKMeans(e.vectors, e.dim, { k, seed: 1, batchSize: bs, epochs });
    // The reference replays our draws: the same init rows and the same batches (the Rng stream after the init).
    const rng = new Rng(1, 'kmeans');
    // k-means++ consumed: one int, then one uniform per further centroid.
    rng.int(0, n - 1);
    for (let c = 1; c < k; c++) rng.random();
    const order = batchOrder(n, bs, epochs, rng);
    const flat = Int32Array.from(order.flatMap((b) => Array.from(b)));
    const sizes = Int32Array.from(order.map((b) => b.length));
    const out = pytorch(
      `
import numpy as np
X = x.numpy().astype(np.float64); X /= np.linalg.norm(X, axis=1, keepdims=True)
C = X[init.numpy().astype(np.int64)].copy(); counts = np.zeros(len(C))
off = 0
for s in sizes.numpy():
    b = flat.numpy()[off:off + s]; off += s
    xb = X[b]; a = np.argmax(xb @ C.T, axis=1)
    for c in range(len(C)):
        m = a == c; nb = m.sum()
        if nb == 0: continue
        counts[c] += nb
        C[c] = C[c] + (xb[m].sum(0) - nb * C[c]) / counts[c]
    C /= np.linalg.norm(C, axis=1, keepdims=True)
O['assign'] = torch.from_numpy(np.argmax(X @ C.T, axis=1).astype(np.int32))
`,
      {
        x: tensor(e.vectors, { shape: [n, e.dim] }),
        init: tensor(r.init, { shape: [k] }),
        flat: tensor(flat, { shape: [flat.length] }),
        sizes: tensor(sizes, { shape: [sizes.length] }),
      },
    );
    const refAssign = out.assign!.data() as Int32Array;
    const ours = purity(r.assign, labels);
    const ref = purity(refAssign, labels);
    let same = 0;
    for (let i = 0; i < n; i++) if (refAssign[i] === r.assign[i]) same++;
    console.log(
      `k-means purity: ours ${(100 * ours).toFixed(2)}%, NumPy ${(100 * ref).toFixed(2)}%; same cluster for ${same}/${n} rows`,
    );
    assert.ok(Math.abs(ours - ref) <= 0.01, `purity ${ours} vs ${ref}`);
    assert.ok(ours > 0.15, `purity ${ours} should beat chance (0.1) on real features`);
    assert.ok(same / n > 0.95, `${same}/${n} rows in the same cluster as the reference`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('k-means: seeded runs repeat; well-separated clusters are found exactly', () => {
  const v = clustered(2000, 16, 5, 0.15, 3);
  const a = sphericalKMeans(v, 16, { k: 5, seed: 2 });
  const b = sphericalKMeans(v, 16, { k: 5, seed: 2 });
  assert.deepEqual(a.assign, b.assign);
  assert.ok(a.meanCos > 0.95, `mean cosine ${a.meanCos}`);
  assert.throws(() => sphericalKMeans(v.subarray(0, 48), 16, { k: 5 }), /k 5 is more than the 3 rows/);
});

test('k-center coreset: each pick is the farthest row from the earlier picks, and the radius is the true covering radius', () => {
  const dim = 8;
  const v = clustered(500, dim, 6, 0.4, 9);
  const c = kCenterGreedy(v, dim, 12, { seed: 0 });
  assert.equal(new Set(c.picks).size, 12);
  const cos = (a: number, b: number): number => {
    let s = 0;
    for (let j = 0; j < dim; j++) s += v[a * dim + j]! * v[b * dim + j]!;
    return s;
  };
  const distTo = (i: number, picks: number[]): number => Math.min(...picks.map((p) => 1 - cos(i, p)));
  for (let t = 1; t < 12; t++) {
    const prev = Array.from(c.picks.subarray(0, t));
    let best = -1;
    for (let i = 0; i < 500; i++) best = Math.max(best, distTo(i, prev));
    assert.ok(Math.abs(distTo(c.picks[t]!, prev) - best) < 1e-5, `pick ${t}`);
    assert.ok(Math.abs(c.gain[t]! - best) < 1e-5);
  }
  let radius = 0;
  for (let i = 0; i < 500; i++) radius = Math.max(radius, distTo(i, Array.from(c.picks)));
  assert.ok(Math.abs(c.radius - radius) < 1e-5, `${c.radius} vs ${radius}`);
});
