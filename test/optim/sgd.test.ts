// SGD against torch.optim.SGD: five steps with momentum and weight decay, parameter for parameter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { SGD, cosineLr, linearScaledLr, stepLr, withWarmup } from '../../src/optim/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

for (const nesterov of [false, true]) {
  test(`five SGD steps match torch.optim.SGD (momentum 0.9, wd 5e-4, nesterov ${nesterov})`, () => {
    torch.manualSeed(4);
    const w1 = torch.randn([6, 5]);
    const w2 = torch.randn([3, 6]);
    const xs = torch.randn([5, 8, 5]);
    const ys = torch.randint(0, 3, [5, 8]);
    const ref = pytorch(
      `
p1 = w1.clone().requires_grad_(); p2 = w2.clone().requires_grad_()
opt = torch.optim.SGD([p1, p2], lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=${nesterov ? 'True' : 'False'})
for i in range(5):
    opt.zero_grad()
    F.cross_entropy(F.relu(xs[i] @ p1.t()) @ p2.t(), ys[i]).backward()
    opt.step()
O['p1'] = p1.detach(); O['p2'] = p2.detach()
O['buf1'] = opt.state[p1]['momentum_buffer']
`,
      { w1, w2, xs, ys },
    );
    const p1 = w1.clone().requiresGrad_(true);
    const p2 = w2.clone().requiresGrad_(true);
    const opt = new SGD([p1, p2], { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov });
    for (let i = 0; i < 5; i++) {
      torch.tidy(() => {
        opt.zeroGrad();
        F.crossEntropy(F.relu(xs.select(0, i).mm(p1.t())).mm(p2.t()), ys.select(0, i)).backward();
        opt.step();
        return undefined;
      });
    }
    assertClose(p1, ref.p1!, 'p1', { rtol: 1e-5, atol: 1e-6 });
    assertClose(p2, ref.p2!, 'p2', { rtol: 1e-5, atol: 1e-6 });
    assertClose(opt.stateDict().buffers.get(0)!, ref.buf1!, 'momentum buffer', { rtol: 1e-5, atol: 1e-6 });
  });
}

test('SGD state round-trips and param groups keep their own settings', () => {
  const a = torch.ones([2]).requiresGrad_(true);
  const b = torch.ones([2]).requiresGrad_(true);
  const opt = new SGD([{ params: [a] }, { params: [b], lr: 0 }], { lr: 1, momentum: 0.5 });
  a.mul(a).sum().backward();
  b.mul(b).sum().backward();
  opt.step();
  assert.deepEqual(a.toArray(), [-1, -1]);
  assert.deepEqual(b.toArray(), [1, 1]);
  const s = opt.stateDict();
  const opt2 = new SGD(
    [{ params: [torch.zeros([2]).requiresGrad_(true)] }, { params: [torch.zeros([2]).requiresGrad_(true)] }],
    { lr: 3 },
  );
  opt2.loadStateDict(s);
  assert.equal(opt2.paramGroups[1]!.lr, 0);
  assert.deepEqual(opt2.stateDict().buffers.get(0)!.toArray(), [2, 2]);
  assert.throws(() => new SGD([a], { lr: -1 }), /lr must be ≥ 0/);
});

test('schedules follow main_moco.py', () => {
  assert.equal(cosineLr(0.03, 0, 200), 0.03);
  assert.ok(Math.abs(cosineLr(0.03, 100, 200) - 0.015) < 1e-12);
  assert.ok(Math.abs(stepLr(0.03, 120, [120, 160]) - 0.003) < 1e-12);
  assert.ok(Math.abs(stepLr(0.03, 170, [120, 160]) - 0.0003) < 1e-12);
  assert.equal(stepLr(0.03, 119, [120, 160]), 0.03);
  assert.equal(linearScaledLr(0.03, 128), 0.015);
  assert.equal(withWarmup(0.1, 0, 10), 0.01);
  assert.equal(withWarmup(0.1, 10, 10), 0.1);
  void Tensor;
});
