// Pre-trained weights in: torchvision ResNet-18/50 in both torch.save formats and an official-MoCo-shaped
// checkpoint give the same features as PyTorch; `moco convert` keeps them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import sharp from 'sharp';
import { join } from 'node:path';
import { describeImport, loadPretrained, type ImportedWeights } from '../../src/io/pretrained.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { dispose, manualSeed, randn, type Tensor } from '../../src/torch/index.js';
import { interop } from '../helpers/interop.js';
import { assertClose, repoRoot, tmpDir } from '../helpers/pytorch.js';
import { resnetForward } from '../helpers/resnet-ref.js';

let dir = '';
let xPath = '';
let x: Tensor;

before(() => {
  dir = tmpDir('moco-pretrained-');
  manualSeed(0);
  x = randn([3, 3, 64, 64]);
  xPath = join(dir, 'x.safetensors');
  saveSafetensors(xPath, { x });
});
after(() => {
  x.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** PyTorch's features of `x` from the checkpoint (strict load into torchvision). */
function pytorchFeatures(ckpt: string, ...flags: string[]): Map<string, Tensor> {
  const out = join(dir, 'feat.safetensors');
  interop('features', ckpt, xPath, out, ...flags);
  return loadSafetensors(out).tensors;
}

function checkFeatures(w: ImportedWeights, ref: Map<string, Tensor>, label: string): void {
  const sd = new Map([...w.backbone, ...w.head]);
  const f = resnetForward(sd, x);
  assertClose(f, ref.get('feat')!, `${label} features`, { atol: 1e-4, rtol: 1e-4 });
  f.dispose();
  if (ref.has('head')) {
    const h = resnetForward(sd, x, { head: true });
    assertClose(h, ref.get('head')!, `${label} head`, { atol: 1e-5, rtol: 1e-4 });
    h.dispose();
  }
}

for (const arch of ['resnet18', 'resnet50']) {
  for (const fmt of ['zip', 'legacy']) {
    test(`torchvision ${arch} (${fmt} format) loads and gives PyTorch's features`, () => {
      const ckpt = join(dir, `${arch}-${fmt}.pth`);
      interop('save-tv', arch, ckpt, fmt);
      const w = loadPretrained(ckpt);
      assert.equal(w.layout, 'torchvision');
      assert.equal(w.headKind, 'fc');
      assert.equal(w.backbone.get('bn1.num_batches_tracked')!.dtype, 'int64');
      const ref = pytorchFeatures(ckpt, arch);
      checkFeatures(w, ref, `${arch} ${fmt}`);
      dispose([w.backbone, w.head, ref]);
      rmSync(ckpt);
    });
  }
}

test('an official-MoCo-shaped ResNet-50 checkpoint: encoder_q kept, encoder_k/queue ignored, MLP head', () => {
  const ckpt = join(dir, 'moco_v2_200ep_pretrain.pth.tar');
  interop('save-moco', 'resnet50', ckpt);
  const w = loadPretrained(ckpt);
  assert.equal(w.layout, 'moco-official');
  assert.equal(w.prefix, 'module.encoder_q.');
  assert.equal(w.headKind, 'mlp');
  assert.deepEqual([...w.head.keys()].sort(), ['fc.0.bias', 'fc.0.weight', 'fc.2.bias', 'fc.2.weight']);
  assert.equal(w.meta.arch, 'resnet50');
  assert.equal(w.meta.epoch, 200);
  assert.ok(w.ignored.includes('module.queue') && w.ignored.includes('module.queue_ptr'));
  assert.ok(w.ignored.some((k) => k.startsWith('module.encoder_k.')));
  assert.ok(![...w.backbone.keys()].some((k) => k.startsWith('fc.') || k.startsWith('module.')));
  assert.match(
    describeImport(w),
    /moco-official.*arch resnet50, epoch 200[\s\S]*head: mlp \(4 tensors\)[\s\S]*ignored: module\.encoder_k\.\* \(\d+\), module\.queue/,
  );
  const ref = pytorchFeatures(ckpt, 'resnet50', 'mlp');
  checkFeatures(w, ref, 'moco');

  // moco convert: the same weights under torchvision names in a safetensors file.
  const out = join(dir, 'converted.safetensors');
  execFileSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'convert', ckpt, out, '--head'], {
    stdio: 'pipe',
  });
  const c = loadPretrained(out);
  assert.equal(c.layout, 'torchvision');
  assert.equal(c.headKind, 'mlp');
  assert.equal(c.backbone.size, w.backbone.size);
  for (const [k, t] of w.backbone) assert.ok(c.backbone.get(k)!.allclose(t, 0, 0), k);
  checkFeatures(c, ref, 'converted');
  dispose([w.backbone, w.head, c.backbone, c.head, ref]);
});

test("an official-MoCo-v3-shaped ResNet-50 checkpoint: base_encoder kept without its projector, momentum encoder and predictor ignored, PyTorch's backbone features; moco embed reads it", async () => {
  const ckpt = join(dir, 'r-50-100ep.pth.tar');
  interop('save-mocov3', 'resnet50', ckpt);
  const w = loadPretrained(ckpt);
  assert.equal(w.layout, 'mocov3-official');
  assert.equal(w.prefix, 'module.base_encoder.');
  assert.equal(w.headKind, 'none');
  assert.ok(
    w.ignored.some((k) => k.startsWith('module.momentum_encoder.')) &&
      w.ignored.some((k) => k.startsWith('module.predictor.')),
  );
  assert.ok(w.ignored.includes('module.base_encoder.fc.0.weight'));
  const ref = pytorchFeatures(ckpt, 'resnet50');
  checkFeatures(w, ref, 'moco v3');
  dispose([w.backbone, w.head, ref]);

  // The command a user runs, with no other flag: 2048-d backbone features, one unit vector an image.
  const images = join(dir, 'v3-images', 'a');
  mkdirSync(images, { recursive: true });
  for (let i = 0; i < 2; i++) {
    await sharp({ create: { width: 80, height: 64, channels: 3, background: { r: 60 * i, g: 120, b: 200 - 50 * i } } })
      .png()
      .toFile(join(images, `${i}.png`));
  }
  const out = join(dir, 'v3.jsonl');
  execFileSync(
    process.execPath,
    [
      join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
      'embed',
      join(dir, 'v3-images'),
      '--pretrained',
      ckpt,
      '--out',
      out,
    ],
    { stdio: 'pipe' },
  );
  const rows = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { vector?: number[]; embedding?: number[] });
  assert.equal(rows.length, 2);
  for (const r of rows) {
    const v = r.vector ?? r.embedding!;
    assert.equal(v.length, 2048);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4);
  }
});
