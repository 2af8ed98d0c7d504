// Every op family against PyTorch on identical inputs: values, and gradients where ops are differentiable.
import { test } from 'node:test';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

type Inputs = Record<string, Tensor>;
interface Case {
  name: string;
  ts: (i: Inputs) => Tensor;
  py: string;
  /** Inputs to differentiate against (weighted-sum loss, same weights on both sides). */
  grad?: string[];
  tol?: { rtol?: number; atol?: number };
}

torch.manualSeed(1234);
const I: Inputs = {
  a: torch.randn([3, 4]),
  b: torch.randn([3, 4]),
  row: torch.randn([4]),
  pos: torch.rand([3, 4]).add(0.1),
  m1: torch.randn([5, 7]),
  m2: torch.randn([7, 6]),
  b1: torch.randn([2, 5, 7]),
  b2: torch.randn([2, 7, 3]),
  x: torch.randn([2, 3, 9, 9]),
  w: torch.randn([4, 3, 3, 3]),
  wg: torch.randn([6, 1, 3, 3]),
  xg: torch.randn([2, 6, 8, 8]),
  cb: torch.randn([4]),
  rm: torch.randn([3]),
  rv: torch.rand([3]).add(0.5),
  g: torch.randn([3]),
  beta: torch.randn([3]),
  lw: torch.randn([5, 4]),
  lb: torch.randn([5]),
  logits: torch.randn([6, 10]),
  target: torch.randint(0, 10, [6]),
  idx: torch.tensor([2, 0, 1, 2], { dtype: 'int64' }),
  gidx: torch.randint(0, 4, [3, 4]),
  mask: torch.rand([3, 4]).gt(0.5),
  theta: torch.tensor([
    [
      [0.9, 0.1, 0.05],
      [-0.1, 1.1, 0.0],
    ],
    [
      [1.2, 0, -0.2],
      [0, 0.7, 0.1],
    ],
  ]),
  img: torch.rand([2, 3, 7, 9]),
  d64: torch.randn([4, 5], { dtype: 'float64' }),
};
const grid = F.affineGrid(I.theta!, [2, 3, 5, 6], false);
I.grid = grid.mul(1.3);

const cases: Case[] = [
  // elementwise and broadcasting
  { name: 'add', ts: (i) => i.a!.add(i.b!, 2), py: 'torch.add(a, b, alpha=2)', grad: ['a', 'b'] },
  { name: 'add_bcast', ts: (i) => i.a!.add(i.row!), py: 'a + row', grad: ['a', 'row'] },
  { name: 'sub_scalar', ts: (i) => i.a!.sub(0.5), py: 'a - 0.5' },
  { name: 'mul', ts: (i) => i.a!.mul(i.b!), py: 'a * b', grad: ['a', 'b'] },
  { name: 'div', ts: (i) => i.a!.div(i.pos!), py: 'a / pos', grad: ['a', 'pos'] },
  { name: 'pow', ts: (i) => i.pos!.pow(2.5), py: 'pos ** 2.5', grad: ['pos'] },
  { name: 'exp', ts: (i) => i.a!.exp(), py: 'a.exp()', grad: ['a'] },
  { name: 'log', ts: (i) => i.pos!.log(), py: 'pos.log()', grad: ['pos'] },
  { name: 'sqrt', ts: (i) => i.pos!.sqrt(), py: 'pos.sqrt()', grad: ['pos'] },
  { name: 'abs', ts: (i) => i.a!.abs(), py: 'a.abs()', grad: ['a'] },
  { name: 'clamp', ts: (i) => i.a!.clamp(-0.5, 0.7), py: 'a.clamp(-0.5, 0.7)', grad: ['a'] },
  { name: 'eq', ts: (i) => i.gidx!.eq(2), py: 'gidx == 2' },
  { name: 'lt', ts: (i) => i.a!.lt(i.b!), py: 'a < b' },
  { name: 'where', ts: (i) => torch.where(i.mask!, i.a!, i.b!), py: 'torch.where(mask, a, b)', grad: ['a', 'b'] },
  { name: 'masked_fill', ts: (i) => i.a!.maskedFill(i.mask!, -3), py: 'a.masked_fill(mask, -3)', grad: ['a'] },
  // reductions
  { name: 'sum', ts: (i) => i.a!.sum(), py: 'a.sum()', grad: ['a'] },
  { name: 'sum_dim', ts: (i) => i.a!.sum({ dim: 1, keepdim: true }), py: 'a.sum(1, keepdim=True)', grad: ['a'] },
  { name: 'mean_dim', ts: (i) => i.a!.mean({ dim: [0] }), py: 'a.mean(0)', grad: ['a'] },
  { name: 'var', ts: (i) => i.a!.var({ dim: 1 }), py: 'a.var(1)', grad: ['a'] },
  { name: 'var_biased', ts: (i) => i.a!.var({ dim: 0, unbiased: false }), py: 'a.var(0, unbiased=False)' },
  { name: 'std', ts: (i) => i.a!.std(), py: 'a.std()', grad: ['a'] },
  { name: 'max', ts: (i) => i.a!.max(), py: 'a.max()' },
  { name: 'max_dim', ts: (i) => i.a!.maxDim(1).values, py: 'a.max(1).values', grad: ['a'] },
  { name: 'max_dim_idx', ts: (i) => i.a!.maxDim(1).indices, py: 'a.max(1).indices' },
  { name: 'min_dim', ts: (i) => i.a!.minDim(0).values, py: 'a.min(0).values' },
  { name: 'argmax', ts: (i) => i.a!.argmax(1), py: 'a.argmax(1)' },
  { name: 'argmin', ts: (i) => i.a!.argmin(), py: 'a.argmin()' },
  { name: 'norm', ts: (i) => i.a!.norm(2, { dim: 1 }), py: 'a.norm(2, dim=1)', grad: ['a'] },
  { name: 'norm1', ts: (i) => i.a!.norm(1), py: 'a.norm(1)' },
  { name: 'logsumexp', ts: (i) => i.a!.logsumexp(1), py: 'a.logsumexp(1)', grad: ['a'] },
  { name: 'cumsum', ts: (i) => i.a!.cumsum(1), py: 'a.cumsum(1)', grad: ['a'] },
  // linear algebra, ordering
  { name: 'mm', ts: (i) => i.m1!.mm(i.m2!), py: 'm1 @ m2', grad: ['m1', 'm2'] },
  { name: 'matmul', ts: (i) => torch.matmul(i.b1!, i.b2!), py: 'torch.matmul(b1, b2)', grad: ['b1', 'b2'] },
  { name: 'bmm', ts: (i) => i.b1!.bmm(i.b2!), py: 'b1.bmm(b2)' },
  {
    name: 'einsum',
    ts: (i) => torch.einsum('nc,nc->n', i.a!, i.b!),
    py: "torch.einsum('nc,nc->n', a, b)",
    grad: ['a', 'b'],
  },
  { name: 'einsum_mat', ts: (i) => torch.einsum('ik,kj->ij', i.m1!, i.m2!), py: "torch.einsum('ik,kj->ij', m1, m2)" },
  { name: 'topk_v', ts: (i) => i.a!.topk(2, 1).values, py: 'a.topk(2, 1).values', grad: ['a'] },
  { name: 'topk_i', ts: (i) => i.a!.topk(2, 1).indices, py: 'a.topk(2, 1).indices' },
  { name: 'sort', ts: (i) => i.a!.sort(1, true).values, py: 'a.sort(1, descending=True).values' },
  { name: 'argsort', ts: (i) => i.a!.argsort(0), py: 'a.argsort(0)' },
  // views and indexing
  { name: 'reshape', ts: (i) => i.a!.reshape(2, 6), py: 'a.reshape(2, 6)', grad: ['a'] },
  { name: 'view', ts: (i) => i.a!.view(4, 3), py: 'a.view(4, 3)' },
  { name: 'flatten', ts: (i) => i.x!.flatten(1), py: 'x.flatten(1)' },
  {
    name: 'permute',
    ts: (i) => i.x!.permute(0, 2, 3, 1).contiguous(),
    py: 'x.permute(0, 2, 3, 1).contiguous()',
    grad: ['x'],
  },
  { name: 'transpose', ts: (i) => i.a!.transpose(0, 1), py: 'a.transpose(0, 1)' },
  { name: 'narrow', ts: (i) => i.a!.narrow(1, 1, 2), py: 'a.narrow(1, 1, 2)', grad: ['a'] },
  { name: 'slice', ts: (i) => i.a!.slice(1, 0, 4, 2), py: 'a[:, 0:4:2]' },
  { name: 'select', ts: (i) => i.a!.select(0, 1), py: 'a[1]' },
  { name: 'index_select', ts: (i) => i.a!.indexSelect(1, i.idx!), py: 'a.index_select(1, idx)', grad: ['a'] },
  { name: 'gather', ts: (i) => i.a!.gather(1, i.gidx!), py: 'a.gather(1, gidx)', grad: ['a'] },
  {
    name: 'scatter',
    ts: (i) => torch.zeros([3, 4]).scatter(1, i.gidx!, i.a!),
    py: 'torch.zeros(3, 4).scatter(1, gidx, a)',
  },
  {
    name: 'scatter_add',
    ts: (i) => torch.zeros([3, 4]).scatterAdd(1, i.gidx!, i.a!),
    py: 'torch.zeros(3, 4).scatter_add(1, gidx, a)',
    grad: ['a'],
  },
  { name: 'cat', ts: (i) => torch.cat([i.a!, i.b!], 1), py: 'torch.cat([a, b], 1)', grad: ['a', 'b'] },
  { name: 'stack', ts: (i) => torch.stack([i.a!, i.b!], 0), py: 'torch.stack([a, b], 0)' },
  { name: 'split', ts: (i) => i.a!.split([1, 3], 1)[1]!, py: 'a.split([1, 3], 1)[1]' },
  { name: 'chunk', ts: (i) => i.a!.chunk(2, 1)[0]!, py: 'a.chunk(2, 1)[0]' },
  { name: 'expand', ts: (i) => i.row!.expand(3, 4), py: 'row.expand(3, 4)' },
  { name: 'repeat', ts: (i) => i.row!.repeat(2, 2), py: 'row.repeat(2, 2)', grad: ['row'] },
  { name: 'flip', ts: (i) => i.x!.flip(3), py: 'x.flip(3)' },
  {
    name: 'channels_last',
    ts: (i) => i.x!.contiguous('channelsLast').add(1),
    py: 'x.contiguous(memory_format=torch.channels_last) + 1',
  },
  // nn functional
  {
    name: 'conv2d',
    ts: (i) => F.conv2d(i.x!, i.w!, i.cb!, { stride: 2, padding: 1 }),
    py: 'F.conv2d(x, w, cb, stride=2, padding=1)',
    grad: ['x', 'w', 'cb'],
    tol: { rtol: 1e-5, atol: 1e-5 },
  },
  {
    name: 'conv2d_dil',
    ts: (i) => F.conv2d(i.x!, i.w!, null, { dilation: 2 }),
    py: 'F.conv2d(x, w, dilation=2)',
    grad: ['x', 'w'],
    tol: { rtol: 1e-5, atol: 1e-5 },
  },
  {
    name: 'conv2d_groups',
    ts: (i) => F.conv2d(i.xg!, i.wg!, null, { groups: 6, padding: 1 }),
    py: 'F.conv2d(xg, wg, groups=6, padding=1)',
    grad: ['xg', 'wg'],
    tol: { rtol: 1e-5, atol: 1e-5 },
  },
  {
    name: 'bn_train',
    ts: (i) => F.batchNorm(i.x!, i.rm!.clone(), i.rv!.clone(), i.g!, i.beta!, { training: true, momentum: 0.2 }),
    py: 'F.batch_norm(x, rm.clone(), rv.clone(), g, beta, training=True, momentum=0.2)',
    grad: ['x', 'g', 'beta'],
  },
  {
    name: 'bn_eval',
    ts: (i) => F.batchNorm(i.x!, i.rm!, i.rv!, i.g!, i.beta!, { training: false }),
    py: 'F.batch_norm(x, rm, rv, g, beta, training=False)',
    grad: ['x', 'g', 'beta'],
  },
  { name: 'linear', ts: (i) => F.linear(i.a!, i.lw!, i.lb!), py: 'F.linear(a, lw, lb)', grad: ['a', 'lw', 'lb'] },
  { name: 'relu', ts: (i) => F.relu(i.a!), py: 'F.relu(a)', grad: ['a'] },
  {
    name: 'max_pool',
    ts: (i) => F.maxPool2d(i.x!, 3, { stride: 2, padding: 1 }),
    py: 'F.max_pool2d(x, 3, 2, 1)',
    grad: ['x'],
  },
  { name: 'avg_pool', ts: (i) => F.avgPool2d(i.x!, 2), py: 'F.avg_pool2d(x, 2)', grad: ['x'] },
  { name: 'adaptive_avg', ts: (i) => F.adaptiveAvgPool2d(i.x!, 1), py: 'F.adaptive_avg_pool2d(x, 1)', grad: ['x'] },
  { name: 'normalize', ts: (i) => F.normalize(i.a!, { dim: 1 }), py: 'F.normalize(a, dim=1)', grad: ['a'] },
  { name: 'softmax', ts: (i) => F.softmax(i.logits!, 1), py: 'F.softmax(logits, 1)', grad: ['logits'] },
  { name: 'log_softmax', ts: (i) => F.logSoftmax(i.logits!, 1), py: 'F.log_softmax(logits, 1)', grad: ['logits'] },
  {
    name: 'cross_entropy',
    ts: (i) => F.crossEntropy(i.logits!, i.target!),
    py: 'F.cross_entropy(logits, target)',
    grad: ['logits'],
  },
  {
    name: 'cross_entropy_sum',
    ts: (i) => F.crossEntropy(i.logits!, i.target!, { reduction: 'sum' }),
    py: "F.cross_entropy(logits, target, reduction='sum')",
  },
  {
    name: 'nll',
    ts: (i) => F.nllLoss(F.logSoftmax(i.logits!, 1), i.target!),
    py: 'F.nll_loss(F.log_softmax(logits, 1), target)',
    grad: ['logits'],
  },
  { name: 'dropout_eval', ts: (i) => F.dropout(i.a!, 0.5, false), py: 'F.dropout(a, 0.5, training=False)' },
  {
    name: 'bilinear',
    ts: (i) => F.interpolate(i.img!, { size: [5, 13], mode: 'bilinear' }),
    py: "F.interpolate(img, size=(5, 13), mode='bilinear', align_corners=False)",
    grad: ['img'],
  },
  {
    name: 'bilinear_ac',
    ts: (i) => F.interpolate(i.img!, { size: [11, 4], mode: 'bilinear', alignCorners: true }),
    py: "F.interpolate(img, size=(11, 4), mode='bilinear', align_corners=True)",
  },
  {
    name: 'nearest',
    ts: (i) => F.interpolate(i.img!, { scaleFactor: 2 }),
    py: "F.interpolate(img, scale_factor=2, mode='nearest')",
  },
  {
    name: 'affine_grid',
    ts: (i) => F.affineGrid(i.theta!, [2, 3, 5, 6], true),
    py: 'F.affine_grid(theta, (2, 3, 5, 6), align_corners=True)',
    grad: ['theta'],
  },
  {
    name: 'grid_zeros',
    ts: (i) => F.gridSample(i.img!, i.grid!),
    py: 'F.grid_sample(img, grid, align_corners=False)',
    grad: ['img', 'grid'],
  },
  {
    name: 'grid_border',
    ts: (i) => F.gridSample(i.img!, i.grid!, { paddingMode: 'border', alignCorners: true }),
    py: "F.grid_sample(img, grid, padding_mode='border', align_corners=True)",
    grad: ['img'],
  },
  {
    name: 'grid_reflect',
    ts: (i) => F.gridSample(i.img!, i.grid!, { paddingMode: 'reflection' }),
    py: "F.grid_sample(img, grid, padding_mode='reflection', align_corners=False)",
    grad: ['img'],
  },
  {
    name: 'pad_const',
    ts: (i) => F.pad(i.img!, [1, 2, 0, 1], 'constant', 0.5),
    py: 'F.pad(img, (1, 2, 0, 1), value=0.5)',
    grad: ['img'],
  },
  {
    name: 'pad_reflect',
    ts: (i) => F.pad(i.img!, [2, 2, 1, 1], 'reflect'),
    py: "F.pad(img, (2, 2, 1, 1), mode='reflect')",
    grad: ['img'],
  },
  // float64
  { name: 'f64_mm', ts: (i) => i.d64!.mm(i.d64!.t()), py: 'd64 @ d64.t()', grad: ['d64'] },
  { name: 'f64_softmax', ts: (i) => F.logSoftmax(i.d64!, 1), py: 'F.log_softmax(d64, 1)', grad: ['d64'] },
];

function weightsFor(out: Tensor): Tensor {
  return torch
    .arange(0, out.numel(), 1, { dtype: out.dtype })
    .cos()
    .reshape(...out.shape);
}

test('op values and gradients match PyTorch', () => {
  const mine: Record<string, Tensor> = {};
  for (const c of cases) {
    const local: Inputs = { ...I };
    for (const n of c.grad ?? []) local[n] = I[n]!.detach().requiresGrad_(true);
    const out = c.ts(local);
    mine[c.name] = out.detach();
    if (c.grad) {
      out.mul(weightsFor(out)).sum().backward();
      for (const n of c.grad) mine[`${c.name}.grad.${n}`] = local[n]!.grad!;
    }
  }
  const py = cases
    .map((c) => {
      const lines = [`L = dict(I)`];
      for (const n of c.grad ?? [])
        lines.push(`L[${JSON.stringify(n)}] = I[${JSON.stringify(n)}].detach().clone().requires_grad_(True)`);
      lines.push(`out = eval(${JSON.stringify(c.py)}, {**globals(), **L})`);
      lines.push(`O[${JSON.stringify(c.name)}] = out.detach()`);
      if (c.grad) {
        lines.push('(out * torch.arange(out.numel(), dtype=out.dtype).cos().reshape(out.shape)).sum().backward()');
        for (const n of c.grad)
          lines.push(`O[${JSON.stringify(`${c.name}.grad.${n}`)}] = L[${JSON.stringify(n)}].grad`);
      }
      return lines.join('\n');
    })
    .join('\n');
  const ref = pytorch(py, I);
  for (const c of cases) {
    assertClose(mine[c.name]!.to(ref[c.name]!.dtype), ref[c.name]!, c.name, c.tol);
    for (const n of c.grad ?? [])
      assertClose(mine[`${c.name}.grad.${n}`]!, ref[`${c.name}.grad.${n}`]!, `${c.name} d/d${n}`, c.tol);
  }
});
