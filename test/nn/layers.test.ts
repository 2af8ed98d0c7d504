// Layers and Module behaviour: SplitBatchNorm2d against the split-BN formula, state dicts, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import {
  BatchNorm1d,
  BatchNorm2d,
  GELU,
  LayerNorm,
  Linear,
  ReLU,
  Sequential,
  SplitBatchNorm2d,
  syncBatchNorm,
  type BatchNormBase,
} from '../../src/nn/index.js';
import { PY_SPLIT_BN, assertClose, pytorch } from '../helpers/pytorch.js';

test('SplitBatchNorm2d matches the split-BN formula (official CIFAR demo) in train and eval', () => {
  torch.manualSeed(2);
  const bn = new SplitBatchNorm2d(5, 4);
  torch.noGrad(() => {
    bn.weight.uniform_(0.5, 1.5);
    bn.bias.uniform_(-0.5, 0.5);
  });
  const x = torch.randn([8, 5, 3, 3]).mul(2).add(0.7);
  const inputs = { x, w: bn.weight.clone(), b: bn.bias.clone() };
  const ref = pytorch(
    `
${PY_SPLIT_BN}
bn = SplitBN(5, 4)
with torch.no_grad(): bn.weight.copy_(w); bn.bias.copy_(b)
y = bn(x); O['y'] = y.detach(); O['rm'] = bn.running_mean; O['rv'] = bn.running_var
# each of the 4 splits (samples n ≡ s mod 4) is normalised on its own
xs = x.view(2, 4, 5, 3, 3)[:, 1]
O['split1'] = (xs - xs.mean((0, 2, 3), keepdim=True)) / (xs.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt() * w.view(1, 5, 1, 1) + b.view(1, 5, 1, 1)
bn.eval(); O['eval'] = bn(x).detach()
`,
    inputs,
  );
  const y = bn.forward(x);
  assertClose(y, ref.y!, 'split bn train', { rtol: 1e-5, atol: 1e-5 });
  assertClose(y.view(2, 4, 5, 3, 3).select(1, 1), ref.split1!, 'split bn formula', { rtol: 1e-4, atol: 1e-5 });
  assertClose(bn.runningMean, ref.rm!, 'running mean');
  assertClose(bn.runningVar, ref.rv!, 'running var');
  bn.eval();
  assertClose(bn.forward(x), ref.eval!, 'split bn eval', { rtol: 1e-5, atol: 1e-5 });
  assert.throws(() => bn.train().forward(torch.randn([6, 5, 2, 2])), /batch of 6 does not split into 4/);
});

test('SyncBatchNorm over one process equals BatchNorm: outputs, gradients, running statistics (float64)', () => {
  // The statistics' own arithmetic (sums, counts, two passes, unbiased running variance); the cross-process
  // gradients are test/dist's (2 processes against one).
  const cases: [string, () => BatchNormBase, number[]][] = [
    ['BatchNorm2d', () => new BatchNorm2d(5), [6, 5, 3, 2]],
    ['BatchNorm1d(affine=False)', () => new BatchNorm1d(7, { affine: false }), [9, 7]],
  ];
  for (const [name, make, shape] of cases) {
    torch.manualSeed(4);
    const x = torch.randn(shape, { dtype: 'float64' }).mul(3).add(1.5);
    const g = torch.randn(shape, { dtype: 'float64' });
    const run = (sync: boolean) => {
      const bn = make().to('float64');
      torch.manualSeed(5);
      if (bn.weight) torch.noGrad(() => bn.weight!.uniform_(0.5, 1.5));
      let calls = 0;
      if (sync) syncBatchNorm(bn, (t) => (calls++, t.mul(1)));
      const xi = x.clone().requiresGrad_(true);
      const y = bn.forward(xi);
      y.backward(g);
      return { y, gx: xi.grad!, gw: bn.weight?.grad ?? null, rm: bn.runningMean, rv: bn.runningVar, calls };
    };
    const [plain, sync] = [run(false), run(true)];
    assert.equal(sync.calls, 2, `${name}: one sum for the mean and count, one for the variance`);
    const tol = { rtol: 1e-12, atol: 1e-12 };
    assertClose(sync.y, plain.y, `${name} output`, tol);
    assertClose(sync.gx, plain.gx, `${name} input gradient`, tol);
    if (plain.gw) assertClose(sync.gw!, plain.gw, `${name} weight gradient`, tol);
    assertClose(sync.rm, plain.rm, `${name} running mean`, tol);
    assertClose(sync.rv, plain.rv, `${name} running var`, tol);
  }
  // A bf16 batch (autocast's conv outputs): statistics in float32, the output back in bf16, as the native kernel.
  torch.manualSeed(6);
  const xb = torch.randn([50, 3, 4, 4]).mul(4).add(20).to('bfloat16');
  const [plain, sync] = [new BatchNorm2d(3), new BatchNorm2d(3)];
  syncBatchNorm(sync, (t) => t.mul(1));
  const [yp, ys] = [plain.forward(xb), sync.forward(xb)];
  assert.equal(ys.dtype, 'bfloat16');
  assertClose(ys.to('float32'), yp.to('float32'), 'bf16 output', { rtol: 0, atol: 0.02 });
  assertClose(sync.runningMean, plain.runningMean, 'bf16 running mean', { rtol: 1e-5, atol: 1e-5 });
  assert.throws(
    () => syncBatchNorm(new SplitBatchNorm2d(4, 2), (t) => t),
    /SplitBatchNorm2d of 2 splits.*--bn-splits 1/,
  );
});

test('BatchNorm2d counts batches and uses running stats in eval', () => {
  const bn = new BatchNorm2d(3);
  bn.forward(torch.randn([4, 3, 2, 2]));
  bn.forward(torch.randn([4, 3, 2, 2]));
  assert.equal(bn.numBatchesTracked.item(), 2);
  bn.eval();
  bn.forward(torch.randn([4, 3, 2, 2]));
  assert.equal(bn.numBatchesTracked.item(), 2);
});

test('Sequential names, loadStateDict errors list the keys', () => {
  const head = new Sequential(new Linear(4, 4), new ReLU(), new Linear(4, 2));
  assert.deepEqual([...head.stateDict().keys()], ['0.weight', '0.bias', '2.weight', '2.bias']);
  const sd = new Map(head.stateDict());
  sd.delete('2.bias');
  sd.set('3.weight', torch.zeros([1]));
  assert.throws(() => head.loadStateDict(sd), /missing keys \(1\): 2\.bias\. unexpected keys \(1\): 3\.weight/);
  const r = head.loadStateDict(sd, { strict: false });
  assert.deepEqual(r, { missingKeys: ['2.bias'], unexpectedKeys: ['3.weight'] });
});

test('Module: parameters require grad, zeroGrad, requiresGrad_, train/eval propagate, apply', () => {
  const m = new Sequential(new Linear(3, 2), new BatchNorm2d(2));
  assert.ok(m.parameters().every((p) => p.requiresGrad));
  m.at(0)
    .forward(torch.randn([1, 3]))
    .sum()
    .backward();
  assert.ok(m.parameters()[0]!.grad);
  m.zeroGrad();
  assert.equal(m.parameters()[0]!.grad, null);
  m.requiresGrad_(false);
  assert.ok(m.parameters().every((p) => !p.requiresGrad));
  m.eval();
  assert.ok(m.namedModules().every(([, x]) => !x.training));
  let count = 0;
  m.apply(() => {
    count++;
  });
  assert.equal(count, 3);
});

test('LayerNorm (eps 1e-6, over one and two trailing dims) and GELU (exact and tanh) match PyTorch with their gradients', () => {
  torch.manualSeed(4);
  const ln = new LayerNorm(6, { eps: 1e-6 });
  const ln2 = new LayerNorm([3, 6]);
  torch.noGrad(() => {
    for (const p of [...ln.parameters(), ...ln2.parameters()]) p.uniform_(0.5, 1.5);
  });
  const x = torch.randn([2, 3, 6]).mul(3).add(1).requiresGrad_(true);
  const inputs = {
    x: x.detach(),
    w: ln.weight!.clone(),
    b: ln.bias!.clone(),
    w2: ln2.weight!.clone(),
    b2: ln2.bias!.clone(),
  };
  const ref = pytorch(
    `
x.requires_grad_(True)
c = torch.arange(36, dtype=x.dtype).reshape(2, 3, 6).cos()
ys = {'ln': F.layer_norm(x, (6,), w, b, 1e-6), 'ln2': F.layer_norm(x, (3, 6), w2, b2), 'gelu': F.gelu(x), 'tanh': F.gelu(x, approximate='tanh')}
for k, y in ys.items():
    O[k] = y.detach()
    O['gx.' + k], = torch.autograd.grad((y * c).sum(), x)
`,
    inputs,
  );
  const c = torch.arange(0, 36, 1, { dtype: 'float32' }).reshape(2, 3, 6).cos();
  const mods: Record<string, { forward(t: torch.Tensor): torch.Tensor }> = {
    ln,
    ln2,
    gelu: new GELU(),
    tanh: new GELU('tanh'),
  };
  for (const [k, m] of Object.entries(mods)) {
    x.grad = null;
    const y = m.forward(x);
    assertClose(y.detach(), ref[k]!, k, { rtol: 1e-5, atol: 1e-5 });
    y.mul(c).sum().backward();
    assertClose(x.grad!, ref[`gx.${k}`]!, `${k} grad`, { rtol: 1e-4, atol: 1e-5 });
  }
  assert.deepEqual([...ln.stateDict().keys()], ['weight', 'bias']);
  assert.equal(new LayerNorm(4, { elementwiseAffine: false }).parameters().length, 0);
});
