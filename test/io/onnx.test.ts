// ONNX export runs in onnxruntime-node and matches our libtorch forward (max abs diff ≤ 1e-4 on normalised
// features): ResNet-18 with both stems and ResNet-50 with the MLP head, batch 1 and 7 through one
// dynamic-batch model; also in an isolated child process, and with a fixed batch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { exportResNetOnnx } from '../../src/models/resnet-onnx.js';
import { inferResNet } from '../../src/models/resnet-shape.js';
import { decodeModel } from '../../src/io/onnx-proto.js';
import { OnnxRunner } from '../../src/io/onnx-runtime.js';
import { loadPretrained } from '../../src/io/pretrained.js';
import { dispose, F, manualSeed, randn, tensor, type Tensor } from '../../src/torch/index.js';
import { interop } from '../helpers/interop.js';
import { tmpDir } from '../helpers/pytorch.js';
import { resnetForward } from '../helpers/resnet-ref.js';

let dir = '';
before(() => {
  dir = tmpDir('moco-onnx-');
});
after(() => rmSync(dir, { recursive: true, force: true }));

function maxAbsDiff(a: Float32Array, b: Tensor): number {
  const bb = b.data() as Float32Array;
  assert.equal(a.length, bb.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - bb[i]!));
  return m;
}

async function check(label: string, sd: Map<string, Tensor>, opts: { head: boolean; size: number }): Promise<void> {
  const path = join(dir, `${label}.onnx`);
  exportResNetOnnx(path, sd, { head: opts.head, opset: 17, dynamicBatch: true });
  const model = decodeModel(readFileSync(path));
  assert.equal(model.opsetImport[0]!.version, 17);
  assert.ok(!model.graph.node.some((n) => n.opType === 'BatchNormalization'), 'BN folded');
  assert.deepEqual(model.graph.input[0]!.type.tensorType.shape.dim[0], { dimParam: 'batch' });
  const runner = await OnnxRunner.open(path);
  try {
    for (const n of [1, 7]) {
      const x = randn([n, 3, opts.size, opts.size]);
      const ours = opts.head ? resnetForward(sd, x, { head: true }) : F.normalize(resnetForward(sd, x), { dim: 1 });
      const out = await runner.run(x.data() as Float32Array, x.shape);
      const o = out[opts.head ? 'embedding' : 'features']!;
      assert.deepEqual(o.dims, ours.shape, `${label} batch ${n} shape`);
      const d = maxAbsDiff(o.data, ours);
      assert.ok(d <= 1e-4, `${label} batch ${n}: max abs diff ${d}`);
      dispose([x, ours]);
    }
  } finally {
    await runner.close();
  }
}

test('ResNet-18, ImageNet stem, backbone features', async () => {
  manualSeed(3);
  const ckpt = join(dir, 'r18.pth');
  interop('save-tv', 'resnet18', ckpt, 'zip');
  const w = loadPretrained(ckpt);
  assert.equal(inferResNet(w.backbone).cifarStem, false);
  await check('r18', w.backbone, { head: false, size: 64 });
  dispose([w.backbone, w.head]);
});

test('ResNet-18, CIFAR stem (3×3, no max-pool), with fc head + L2 norm', async () => {
  manualSeed(4);
  const ckpt = join(dir, 'r18c.pth');
  interop('save-tv', 'resnet18', ckpt, 'legacy', 'cifar');
  const w = loadPretrained(ckpt);
  const sd = new Map([...w.backbone, ...w.head]);
  assert.deepEqual(inferResNet(sd), {
    block: 'basic',
    layers: [2, 2, 2, 2],
    cifarStem: true,
    featureDim: 512,
    head: 'fc',
  });
  await check('r18c', sd, { head: false, size: 32 });
  await check('r18c-head', sd, { head: true, size: 32 });
  dispose(sd);
});

test('ResNet-50 from an official-MoCo-shaped checkpoint, MLP head + L2 norm; isolated runner; fixed batch', async () => {
  manualSeed(5);
  const ckpt = join(dir, 'moco50.pth.tar');
  interop('save-moco', 'resnet50', ckpt);
  const w = loadPretrained(ckpt);
  rmSync(ckpt);
  const sd = new Map([...w.backbone, ...w.head]);
  await check('r50-head', sd, { head: true, size: 64 });

  // The same model in a child process gives the same numbers.
  const path = join(dir, 'r50-head.onnx');
  const x = randn([2, 3, 64, 64]);
  const inproc = await OnnxRunner.open(path);
  const iso = await OnnxRunner.open(path, { isolate: true });
  try {
    const a = (await inproc.run(x.data() as Float32Array, x.shape)).embedding!;
    const b = (await iso.run(x.data() as Float32Array, x.shape)).embedding!;
    assert.deepEqual(b.dims, [2, 128]);
    assert.equal(maxAbsDiff(b.data, tensor(a.data, { shape: a.dims })), 0);
  } finally {
    await inproc.close();
    await iso.close();
  }

  // Fixed batch: the input dimension is a number, and other batch sizes are refused by onnxruntime.
  const fixed = join(dir, 'r50-fixed.onnx');
  exportResNetOnnx(fixed, sd, { head: false, dynamicBatch: false, batchSize: 2 });
  assert.deepEqual(decodeModel(readFileSync(fixed)).graph.input[0]!.type.tensorType.shape.dim[0], { dimValue: 2 });
  const r = await OnnxRunner.open(fixed);
  try {
    const y = randn([3, 3, 64, 64]);
    await assert.rejects(r.run(y.data() as Float32Array, y.shape));
    y.dispose();
  } finally {
    await r.close();
  }
  dispose([sd, x]);
});
