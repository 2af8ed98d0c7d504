// ONNX export of MoCo v3's ViT runs in onnxruntime and matches our libtorch forward (max abs diff ≤ 1e-4, cosine
// ≥ 0.99999): raw and L2-normalised cls features and a Linear head, batch 3 and 1 through one dynamic-batch model,
// with LayerNormalization (opset 17) and written out (opset 13); onnxruntime-web (the browser page's runtime) gives
// the same numbers; `moco export --format onnx` of a ViT checkpoint and `moco serve`'s model on it and on the file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildViTOnnx, exportViTOnnx, inferViT } from '../../src/models/vit-onnx.js';
import { decodeModel, encodeModel } from '../../src/io/onnx-proto.js';
import { OnnxRunner } from '../../src/io/onnx-runtime.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { VisionTransformer, createViT } from '../../src/models/index.js';
import { loadEncoder } from '../../src/eval/encoder.js';
import { ServeModel } from '../../src/serve/model.js';
import { dispose, F, manualSeed, noGrad, randn, type Tensor } from '../../src/torch/index.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

let dir = '';
before(() => {
  dir = tmpDir('moco-onnx-vit-');
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Max abs difference and the smallest per-row cosine of two N × D arrays. */
function compare(a: Float32Array, b: Float32Array, d: number): { diff: number; cos: number } {
  assert.equal(a.length, b.length);
  let diff = 0;
  let cos = 1;
  for (let r = 0; r < a.length / d; r++) {
    let dot = 0,
      na = 0,
      nb = 0;
    for (let j = r * d; j < (r + 1) * d; j++) {
      diff = Math.max(diff, Math.abs(a[j]! - b[j]!));
      dot += a[j]! * b[j]!;
      na += a[j]! ** 2;
      nb += b[j]! ** 2;
    }
    cos = Math.min(cos, dot / Math.sqrt(na * nb));
  }
  return { diff, cos };
}

function assertMatch(label: string, onnx: Float32Array, ours: Tensor): void {
  const { diff, cos } = compare(onnx, ours.data() as Float32Array, ours.shape[1]!);
  assert.ok(diff <= 1e-4, `${label}: max abs diff ${diff}`);
  assert.ok(cos >= 0.99999, `${label}: cosine ${cos}`);
}

/** A small ViT away from its init (LayerNorms at 1/0, zero biases, ~0 cls token), so every weight shows. */
function smallViT(numClasses = 0): VisionTransformer {
  const m = new VisionTransformer({ imgSize: 32, patchSize: 4, embedDim: 64, depth: 2, numHeads: 2, numClasses });
  noGrad(() => {
    for (const [k, p] of m.namedParameters()) {
      if (k.endsWith('bias') || k === 'cls_token') p.uniform_(-0.2, 0.2);
      else if (k.includes('norm')) p.uniform_(0.5, 1.5);
    }
  });
  m.eval();
  return m;
}

test('ViT (64-d, 2 blocks, 2 heads, patch 4, 32 px): cls features and head, opset 17 and 13, batch 3 and 1', async () => {
  manualSeed(31);
  const m = smallViT(10);
  const sd = m.stateDict();
  assert.deepEqual(inferViT(sd), { embedDim: 64, patch: 4, grid: 8, depth: 2, mlpDim: 256, head: true });
  const xs = [randn([3, 3, 32, 32]), randn([1, 3, 32, 32])];
  const feats = xs.map((x) => noGrad(() => m.features(x)));
  const heads = xs.map((x) => noGrad(() => m.forward(x)));
  for (const opset of [17, 13]) {
    for (const o of [
      { head: false, normalize: false },
      { head: false, normalize: true },
      { head: true, normalize: true },
    ]) {
      const label = `opset ${opset} ${o.head ? 'head' : 'features'}${o.normalize ? ' normalised' : ''}`;
      const path = join(dir, `vit-${opset}-${+o.head}-${+o.normalize}.onnx`);
      exportViTOnnx(path, sd, { ...o, numHeads: 2, opset });
      const model = decodeModel(readFileSync(path));
      const ops = new Set(model.graph.node.map((n) => n.opType));
      assert.equal(ops.has('LayerNormalization'), opset >= 17, `${label}: LayerNormalization from opset 17 only`);
      assert.deepEqual(
        model.graph.input[0]!.type.tensorType.shape.dim.map((d) => ('dimParam' in d ? d.dimParam : Number(d.dimValue))),
        ['batch', 3, 32, 32],
      );
      const runner = await OnnxRunner.open(path);
      try {
        for (const [i, x] of xs.entries()) {
          const out = (await runner.run(x.data() as Float32Array, x.shape))[o.head ? 'embedding' : 'features']!;
          const ref = o.head ? heads[i]! : feats[i]!;
          assert.deepEqual(out.dims, ref.shape, `${label} batch ${x.shape[0]} shape`);
          const want = o.normalize ? F.normalize(ref, { dim: 1 }) : ref;
          assertMatch(`${label} batch ${x.shape[0]}`, out.data, want);
          if (want !== ref) want.dispose();
        }
      } finally {
        await runner.close();
      }
    }
  }
  // The browser page's runtime (WebAssembly) runs the same graph to the same numbers.
  const ort = await import('onnxruntime-web');
  const session = await ort.InferenceSession.create(encodeModel(buildViTOnnx(sd, { numHeads: 2, normalize: false })));
  const x = xs[0]!;
  const out = await session.run({ input: new ort.Tensor('float32', x.data() as Float32Array, x.shape) });
  assertMatch('onnxruntime-web', out.features!.data as Float32Array, feats[0]!);
  await session.release();
  assert.throws(() => buildViTOnnx(sd, { numHeads: 3 }), /3 attention heads do not divide the 64-d tokens/);
  dispose([...xs, ...feats, ...heads]);
  m.dispose();
});

test('moco export --format onnx of a ViT checkpoint; moco serve on the checkpoint and on the .onnx file', async () => {
  manualSeed(32);
  // Our checkpoint layout without metadata: the width (192) names vit_tiny, whose 3 heads the export must use.
  const m = createViT('vit_tiny', { imgSize: 32, patchSize: 4, depth: 1 });
  const ckpt = join(dir, 'vit-tiny.safetensors');
  saveSafetensors(ckpt, m.stateDict());
  m.dispose();
  const onnx = join(dir, 'vit-tiny.onnx');
  execFileSync(
    process.execPath,
    [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'export', ckpt, '--format', 'onnx', '--out', onnx],
    { stdio: 'pipe' },
  );
  const meta = new Map((decodeModel(readFileSync(onnx)).metadataProps ?? []).map((p) => [p.key, p.value]));
  assert.equal(meta.get('arch'), 'vit(192-d, 1 blocks, 3 heads, patch 4)');
  assert.equal(JSON.parse(meta.get('preprocess')!).size, 32);

  const enc = loadEncoder(ckpt);
  const x = randn([2, 3, 32, 32]);
  const ref = F.normalize(enc.backbone(x), { dim: 1 });
  enc.dispose();
  for (const path of [onnx, ckpt]) {
    const sm = await ServeModel.open(path, { engine: path === ckpt ? 'onnxruntime' : undefined, threads: 1 });
    try {
      assert.equal(sm.info.dim, 192);
      assert.equal(sm.info.preprocessing.size, 32);
      assertMatch(`serve ${path}`, await sm.embed(x.data() as Float32Array, 2), ref);
    } finally {
      await sm.close();
    }
  }
  dispose([x, ref]);
});
