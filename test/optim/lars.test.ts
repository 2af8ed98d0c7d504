// LARS against MoCo v3's optimizer.py (written out in the Python below from its definition): five steps in float64
// on weights (decay + trust ratio), a bias and a BN-like scale (neither), and a zero-initialised weight (‖w‖ = 0:
// no scaling), parameter for parameter and momentum buffer for buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';
import { LARS } from '../../src/optim/index.js';
import { TOL64, assertClose, pytorch } from '../helpers/pytorch.js';

const PY_LARS = `
class LARS(torch.optim.Optimizer):
    """moco-v3 optimizer.py: LARS, no rate scaling or weight decay for parameters <= 1D."""
    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, trust_coefficient=0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g['params']:
                dp = p.grad
                if dp is None:
                    continue
                if p.ndim > 1:  # if not normalization gamma/beta or bias
                    dp = dp.add(p, alpha=g['weight_decay'])
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(param_norm > 0.,
                                    torch.where(update_norm > 0, (g['trust_coefficient'] * param_norm / update_norm), one),
                                    one)
                    dp = dp.mul(q)
                param_state = self.state[p]
                if 'mu' not in param_state:
                    param_state['mu'] = torch.zeros_like(p)
                mu = param_state['mu']
                mu.mul_(g['momentum']).add_(dp)
                p.add_(mu, alpha=-g['lr'])
`;

test('five LARS steps match moco-v3 optimizer.py (float64; wd 1e-2, trust 0.001; ndim ≤ 1 neither decayed nor scaled)', () => {
  torch.manualSeed(11);
  const inputs = {
    w1: torch.randn([6, 5]).double(),
    b1: torch.randn([6]).double(),
    g1: torch.rand([6]).add(0.5).double(),
    w2: torch.zeros([3, 6]).double(),
    xs: torch.randn([5, 8, 5]).double(),
    ys: torch.randint(0, 3, [5, 8]),
  };
  const ref = pytorch(
    `${PY_LARS}
ps = [I[n].clone().requires_grad_() for n in ['w1', 'b1', 'g1', 'w2']]
w1, b1, g1, w2 = ps
opt = LARS(ps, lr=0.5, weight_decay=1e-2)
for i in range(5):
    opt.zero_grad()
    F.cross_entropy(F.relu((xs[i] @ w1.t() + b1) * g1) @ w2.t(), ys[i]).backward()
    opt.step()
    if i == 1:
        for g in opt.param_groups: g['lr'] = 0.3
for n, p in zip(['w1', 'b1', 'g1', 'w2'], ps):
    O[n] = p.detach(); O['mu_' + n] = opt.state[p]['mu']
`,
    inputs,
  );
  const ps = [inputs.w1, inputs.b1, inputs.g1, inputs.w2].map((t) => t.clone().requiresGrad_(true));
  const [w1, b1, g1, w2] = ps as [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor];
  const opt = new LARS(ps, { lr: 0.5, weightDecay: 1e-2 });
  assert.deepEqual(
    { ...opt.paramGroups[0], params: undefined },
    { params: undefined, lr: 0.5, weightDecay: 1e-2, momentum: 0.9, trustCoefficient: 0.001 },
  );
  for (let i = 0; i < 5; i++) {
    torch.tidy(() => {
      opt.zeroGrad();
      F.crossEntropy(
        F.relu(inputs.xs.select(0, i).mm(w1.t()).add(b1).mul(g1)).mm(w2.t()),
        inputs.ys.select(0, i),
      ).backward();
      opt.step();
      return undefined;
    });
    if (i === 1) opt.setLr(0.3);
  }
  const names = ['w1', 'b1', 'g1', 'w2'];
  const buffers = opt.stateDict().buffers;
  ps.forEach((p, i) => {
    assertClose(p, ref[names[i]!]!, names[i]!, TOL64);
    assertClose(buffers.get(i)!, ref[`mu_${names[i]}`]!, `μ of ${names[i]}`, TOL64);
  });
  // The zero weight grew from its unscaled first step, then was scaled by the trust ratio.
  assert.ok(w2.norm().item() > 0);
});

test('LARS state round-trips; parameters without a gradient are skipped; bad settings are refused', () => {
  const a = torch.ones([2, 2]).double().requiresGrad_(true);
  const b = torch.ones([2]).double().requiresGrad_(true);
  const opt = new LARS([{ params: [a] }, { params: [b], lr: 0 }], { lr: 1, weightDecay: 0.5 });
  a.mul(a).sum().backward();
  opt.step();
  // dw = 2a + 0.5a = 2.5a; trust 0.001·‖a‖/‖dw‖ = 0.0004 → dw·q = 0.001 everywhere.
  assertClose(a, torch.ones([2, 2]).double().sub(0.001), 'one LARS step', TOL64);
  assert.equal(opt.stateDict().buffers.size, 1);
  const s = opt.stateDict();
  const opt2 = new LARS(
    [{ params: [torch.zeros([2, 2]).requiresGrad_(true)] }, { params: [torch.zeros([2]).requiresGrad_(true)] }],
    { lr: 3 },
  );
  opt2.loadStateDict(s);
  assert.equal(opt2.paramGroups[1]!.lr, 0);
  assert.equal(opt2.paramGroups[0]!.weightDecay, 0.5);
  assert.deepEqual(
    opt2
      .stateDict()
      .buffers.get(0)!
      .toArray()
      .map((x) => Number(x.toFixed(12))),
    [0.001, 0.001, 0.001, 0.001],
  );
  assert.equal(opt2.stateDict().buffers.has(1), false);
  assert.throws(() => new LARS([a], { lr: -1 }), /lr must be ≥ 0/);
  assert.throws(() => new LARS([a], { lr: 1, trustCoefficient: 0 }), /trustCoefficient must be > 0/);
  opt.dispose();
  opt2.dispose();
});
