// MoCo v3's ViT against a PyTorch ViT with timm's module names (written out below, as ../shared/peer/torch_mocov3.py
// writes it) on identical weights and inputs: output and every gradient (float32, then float64 with TOL64), the
// fixed sin-cos position embedding, the init (bit for bit under one seed, and its statistics), the frozen patch
// projection, and timm's state-dict names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { Linear, type Module } from '../../src/nn/index.js';
import {
  ARCHS,
  VIT_ARCHS,
  VisionTransformer,
  type Block,
  build2dSinCosPositionEmbedding,
  createViT,
  projectionHead,
  vit_small,
  type ViTOpts,
} from '../../src/models/index.js';
import { TOL64, assertClose, pytorch } from '../helpers/pytorch.js';
import { PY_VIT } from '../helpers/vit-ref.js';

const TOL32 = { rtol: 1e-4, atol: 1e-5 };
const SMALL: ViTOpts = { imgSize: 32, patchSize: 4, embedDim: 48, depth: 2, numHeads: 3 };

const PY_SMALL = 'ViT(32, 4, 48, 2, 3, False)';

function inputsOf(model: Module, extra: Record<string, Tensor>): Record<string, Tensor> {
  const I: Record<string, Tensor> = { ...extra };
  for (const [k, v] of model.stateDict()) I[`p.${k}`] = v;
  return I;
}

/** Σ y·cos(i): a fixed loss whose gradient differs per element. */
function weightedSum(y: Tensor): Tensor {
  const w = torch
    .arange(0, y.numel(), 1, { dtype: 'float64' })
    .cos()
    .to(y.dtype)
    .reshape(...y.shape);
  return y.mul(w).sum();
}

test('ViT (32 px, patch 4, dim 48, depth 2, 3 heads): output and every gradient match PyTorch, float32 and float64', () => {
  torch.manualSeed(21);
  const model = new VisionTransformer(SMALL);
  // The init leaves LayerNorms at 1/0, biases at 0 and the cls token at ~1e-6: perturb them so that every parameter
  // matters to the output and its gradient.
  torch.noGrad(() => {
    for (const [k, p] of model.namedParameters()) {
      if (k.endsWith('bias') || k === 'cls_token') p.uniform_(-0.2, 0.2);
      else if (k.includes('norm')) p.uniform_(0.5, 1.5);
    }
  });
  const x = torch.randn([3, 3, 32, 32]);
  const ref = pytorch(
    `${PY_VIT}
m = ${PY_SMALL}
m.load_state_dict({k[2:]: v for k, v in I.items() if k.startswith('p.')}, strict=True)
with torch.no_grad(): O['y32'] = m(x)
m = m.double()
y = m(x.double())
O['y64'] = y.detach()
w = torch.arange(y.numel(), dtype=torch.float64).cos().reshape(y.shape)
(y * w).sum().backward()
for k, p in m.named_parameters():
    if p.requires_grad: O['grad.' + k] = p.grad
`,
    inputsOf(model, { x }),
  );

  const y32 = torch.noGrad(() => model.forward(x));
  assert.deepEqual(y32.shape, [3, 48]);
  assertClose(y32, ref.y32!, 'float32 output', TOL32);

  model.to('float64');
  const y = model.forward(x.to('float64'));
  assertClose(y.detach(), ref.y64!, 'float64 output', TOL64);
  weightedSum(y).backward();
  const params = model.namedParameters();
  assert.equal(params.length, Object.keys(ref).filter((k) => k.startsWith('grad.')).length, 'parameter count');
  for (const [k, p] of params) assertClose(p.grad!, ref[`grad.${k}`]!, `grad ${k}`, TOL64);
  model.dispose();
});

test("the fixed position embedding is vits.py's build_2d_sincos_position_embedding, a buffer that trains not", () => {
  const small = new VisionTransformer(SMALL);
  const s = vit_small();
  const ref = pytorch(`${PY_VIT}
O['small'] = sincos(8, 8, 48)
O['vit_small'] = sincos(14, 14, 384)
O['grid_4x6'] = sincos(4, 6, 16)
`);
  // Same float32 ops in the same order: equal up to libm's sin/cos.
  const tol = { rtol: 0, atol: 1e-6 };
  assertClose(small.posEmbed, ref.small!, 'pos_embed 8×8×48', tol);
  assertClose(s.posEmbed, ref.vit_small!, 'pos_embed 14×14×384', tol);
  assertClose(build2dSinCosPositionEmbedding([4, 6], 16), ref.grid_4x6!, 'pos_embed 4×6×16', tol);
  assert.equal(small.posEmbed.narrow(1, 0, 1).abs().sum().item(), 0, 'cls slot zeros');
  assert.equal(small.posEmbed.requiresGrad, false);
  assert.ok(!small.namedParameters().some(([k]) => k === 'pos_embed'), 'pos_embed is not a parameter');
  assert.ok(small.stateDict().has('pos_embed'), 'pos_embed is in the state dict');
  assert.throws(() => build2dSinCosPositionEmbedding([2, 2], 10), /divisible by 4/);
  small.dispose();
  s.dispose();
});

test("under one seed, the init equals the PyTorch ViT's bit for bit (stop-grad-conv1: the peer's and vits.py's agree)", () => {
  torch.manualSeed(5);
  const model = new VisionTransformer({ ...SMALL, stopGradConv1: true });
  const ref = pytorch(`${PY_VIT}
torch.manual_seed(5)
m = ViT(32, 4, 48, 2, 3, True)
for k, v in m.state_dict().items(): O[k] = v
`);
  const sd = model.stateDict();
  assert.deepEqual([...sd.keys()], Object.keys(ref));
  for (const [k, v] of sd) assertClose(v, ref[k]!, `init ${k}`, { rtol: 0, atol: 0 });
  model.dispose();
});

test('init statistics: qkv U(±√(6/(out/3+in))), other Linears xavier, biases 0, LayerNorm 1/0, cls N(0, 1e-6), patch xavier', () => {
  torch.manualSeed(0);
  const dim = 384;
  const m = new VisionTransformer({
    imgSize: 32,
    patchSize: 16,
    embedDim: dim,
    depth: 2,
    numHeads: 12,
    numClasses: 10,
  });
  const sd = m.stateDict();
  const checkUniform = (k: string, bound: number): void => {
    const t = sd.get(k)!;
    const max = t.abs().max().item();
    const std = t.std().item();
    assert.ok(max <= bound && max > 0.98 * bound, `${k}: max |w| ${max} vs bound ${bound}`);
    assert.ok(
      Math.abs(std - bound / Math.sqrt(3)) / (bound / Math.sqrt(3)) < 0.03,
      `${k}: std ${std} vs ${bound / Math.sqrt(3)}`,
    );
  };
  checkUniform('blocks.0.attn.qkv.weight', Math.sqrt(6 / (dim + dim)));
  checkUniform('blocks.1.attn.proj.weight', Math.sqrt(6 / (dim + dim)));
  checkUniform('blocks.0.mlp.fc1.weight', Math.sqrt(6 / (dim + 4 * dim)));
  checkUniform('blocks.1.mlp.fc2.weight', Math.sqrt(6 / (4 * dim + dim)));
  checkUniform('head.weight', Math.sqrt(6 / (dim + 10)));
  checkUniform('patch_embed.proj.weight', Math.sqrt(6 / (3 * 16 * 16 + dim)));
  for (const [k, t] of sd) {
    if (k.endsWith('.bias') && !k.includes('norm')) assert.equal(t.abs().sum().item(), 0, `${k} zero`);
    if (k.includes('norm') && k.endsWith('.weight')) assert.equal(t.sub(1).abs().sum().item(), 0, `${k} ones`);
    if (k.includes('norm') && k.endsWith('.bias')) assert.equal(t.abs().sum().item(), 0, `${k} zeros`);
  }
  const clsStd = m.clsToken.std().item();
  assert.ok(clsStd > 0.8e-6 && clsStd < 1.2e-6, `cls std ${clsStd}`);
  m.dispose();
});

test('stopGradConv1 freezes the patch projection: no gradient there, every other parameter gets one', () => {
  torch.manualSeed(1);
  const frozen = new VisionTransformer({ ...SMALL, stopGradConv1: true });
  const free = new VisionTransformer(SMALL);
  const x = torch.randn([2, 3, 32, 32]);
  for (const model of [frozen, free]) weightedSum(model.forward(x)).backward();
  for (const [k, p] of frozen.namedParameters()) {
    if (k.startsWith('patch_embed.proj.')) {
      assert.equal(p.requiresGrad, false, `${k} requires no grad`);
      assert.equal(p.grad, null, `${k} has no grad`);
    } else {
      assert.ok(p.requiresGrad && p.grad, `${k} has a grad`);
    }
  }
  assert.ok(
    free.patch_embed.proj.weight.requiresGrad && free.patch_embed.proj.weight.grad,
    'without the option the projection trains',
  );
  // Moving the model keeps the freeze.
  frozen.to('float64');
  assert.equal(frozen.patch_embed.proj.weight.requiresGrad, false);
  frozen.dispose();
  free.dispose();
});

test("state dict names are timm's vit_small_patch16_224 (MoCo v3 checkpoints load by name)", () => {
  const perBlock = [
    'norm1.weight',
    'norm1.bias',
    'attn.qkv.weight',
    'attn.qkv.bias',
    'attn.proj.weight',
    'attn.proj.bias',
    'norm2.weight',
    'norm2.bias',
    'mlp.fc1.weight',
    'mlp.fc1.bias',
    'mlp.fc2.weight',
    'mlp.fc2.bias',
  ];
  const expected = [
    'cls_token',
    'pos_embed',
    'patch_embed.proj.weight',
    'patch_embed.proj.bias',
    ...Array.from({ length: 12 }, (_, i) => perBlock.map((n) => `blocks.${i}.${n}`)).flat(),
    'norm.weight',
    'norm.bias',
  ];
  const m = vit_small();
  const sd = m.stateDict();
  assert.deepEqual([...sd.keys()], expected);
  assert.deepEqual(sd.get('pos_embed')!.shape, [1, 197, 384]);
  assert.deepEqual(sd.get('patch_embed.proj.weight')!.shape, [384, 3, 16, 16]);
  assert.deepEqual(sd.get('blocks.11.attn.qkv.weight')!.shape, [1152, 384]);
  assert.deepEqual(sd.get('blocks.0.mlp.fc1.weight')!.shape, [1536, 384]);
  assert.equal(m.featureDim, 384);
  const withHead = vit_small({ numClasses: 1000, depth: 1 });
  assert.deepEqual([...withHead.stateDict().keys()].slice(-2), ['head.weight', 'head.bias']);
  m.dispose();
  withHead.dispose();
});

test('head is replaceable (MoCo v3 puts its projector there); features are the cls token after norm', () => {
  torch.manualSeed(2);
  const m = new VisionTransformer(SMALL);
  const x = torch.randn([2, 3, 32, 32]);
  const f = torch.noGrad(() => m.features(x));
  assert.deepEqual(f.shape, [2, 48]);
  assertClose(
    torch.noGrad(() => m.forward(x)),
    f,
    'Identity head',
    { rtol: 0, atol: 0 },
  );
  m.replaceModule('head', projectionHead('mlp', m.featureDim, 16));
  assert.ok(m.head.children()[0] instanceof Linear);
  assert.deepEqual(torch.noGrad(() => m.forward(x)).shape, [2, 16]);
  assert.ok([...m.stateDict().keys()].includes('head.2.weight'));
  assert.throws(
    () => m.forward(torch.randn([1, 3, 16, 16])),
    /input 16×16 does not match the model's image size 32×32/,
  );
  m.dispose();
});

test('factories and registry: vit_tiny / vit_small / vit_base resolve by name, ResNet archs stay apart', () => {
  const shapes: [string, number, number][] = [
    ['vit_tiny', 192, 3],
    ['vit_small', 384, 12],
    ['vit_base', 768, 12],
  ];
  for (const [arch, dim, heads] of shapes) {
    const m = createViT(arch, { imgSize: 32, patchSize: 8, depth: 1 });
    assert.equal(m.embedDim, dim);
    assert.equal((m.blocks.at(0) as Block).attn.numHeads, heads);
    assert.deepEqual(m.posEmbed.shape, [1, 17, dim]);
    m.dispose();
  }
  assert.deepEqual(Object.keys(VIT_ARCHS), ['vit_tiny', 'vit_small', 'vit_base']);
  assert.ok(!('vit_small' in ARCHS));
  assert.throws(() => createViT('vit_huge'), /unknown ViT arch 'vit_huge'; valid: vit_tiny, vit_small, vit_base/);
  assert.throws(() => new VisionTransformer({ imgSize: 30, patchSize: 4 }), /not a whole number of 4×4 patches/);
});
