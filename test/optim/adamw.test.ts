// AdamW against torch.optim.AdamW: five float64 steps (decoupled decay, bias correction), every parameter and both
// moments, an lr change midway, and a parameter that gets no gradient in some steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';
import { AdamW } from '../../src/optim/index.js';
import { TOL64, assertClose, pytorch } from '../helpers/pytorch.js';

test('five AdamW steps match torch.optim.AdamW (float64; wd 0.1, default betas and eps)', () => {
  torch.manualSeed(12);
  const inputs = {
    w1: torch.randn([6, 5]).double(),
    b1: torch.randn([6]).double(),
    w2: torch.randn([3, 6]).double(),
    xs: torch.randn([5, 8, 5]).double(),
    ys: torch.randint(0, 3, [5, 8]),
  };
  const ref = pytorch(
    `
ps = [I[n].clone().requires_grad_() for n in ['w1', 'b1', 'w2']]
w1, b1, w2 = ps
opt = torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1)
for i in range(5):
    opt.zero_grad(set_to_none=True)  # as ours (1.13's default keeps zero gradients, which AdamW would step on)
    # b1 is left out of steps 0 and 3: its bias correction counts only its own steps
    h = xs[i] @ w1.t() + (b1 if i not in (0, 3) else 0)
    F.cross_entropy(F.relu(h) @ w2.t(), ys[i]).backward()
    opt.step()
    if i == 1:
        for g in opt.param_groups: g['lr'] = 3e-3
for n, p in zip(['w1', 'b1', 'w2'], ps):
    O[n] = p.detach(); O['m_' + n] = opt.state[p]['exp_avg']; O['v_' + n] = opt.state[p]['exp_avg_sq']
    O['step_' + n] = torch.as_tensor(opt.state[p]['step'], dtype=torch.float64).reshape(1)
`,
    inputs,
  );
  const ps = [inputs.w1, inputs.b1, inputs.w2].map((t) => t.clone().requiresGrad_(true));
  const [w1, b1, w2] = ps as [torch.Tensor, torch.Tensor, torch.Tensor];
  const opt = new AdamW(ps, { lr: 1e-2, weightDecay: 0.1 });
  assert.deepEqual(opt.paramGroups[0]!.betas, [0.9, 0.999]);
  assert.equal(opt.paramGroups[0]!.eps, 1e-8);
  for (let i = 0; i < 5; i++) {
    torch.tidy(() => {
      opt.zeroGrad();
      let h = inputs.xs.select(0, i).mm(w1.t());
      if (i !== 0 && i !== 3) h = h.add(b1);
      F.crossEntropy(F.relu(h).mm(w2.t()), inputs.ys.select(0, i)).backward();
      opt.step();
      return undefined;
    });
    if (i === 1) opt.setLr(3e-3);
  }
  const names = ['w1', 'b1', 'w2'];
  const s = opt.stateDict();
  ps.forEach((p, i) => {
    const n = names[i]!;
    assertClose(p, ref[n]!, n, TOL64);
    assertClose(s.expAvg.get(i)!, ref[`m_${n}`]!, `exp_avg of ${n}`, TOL64);
    assertClose(s.expAvgSq.get(i)!, ref[`v_${n}`]!, `exp_avg_sq of ${n}`, TOL64);
    assert.equal(s.steps.get(i), ref[`step_${n}`]!.item(), `step of ${n}`);
  });
  assert.equal(s.steps.get(1), 3);
});

test('AdamW state round-trips and resumes the same updates; bad settings are refused', () => {
  torch.manualSeed(13);
  const w0 = torch.randn([4, 3]).double();
  const x = torch.randn([5, 3]).double();
  const run = (opt: AdamW, w: torch.Tensor): void =>
    torch.tidy(() => {
      opt.zeroGrad();
      x.mm(w.t()).pow(2).sum().backward();
      opt.step();
      return undefined;
    });
  const a = w0.clone().requiresGrad_(true);
  const optA = new AdamW([a], { lr: 0.1, weightDecay: 0.05 });
  for (let i = 0; i < 3; i++) run(optA, a);
  const b = w0.clone().requiresGrad_(true);
  const optB = new AdamW([b], { lr: 0.1, weightDecay: 0.05 });
  for (let i = 0; i < 2; i++) run(optB, b);
  const c = b.detach().clone().requiresGrad_(true);
  const optC = new AdamW([c], { lr: 1, betas: [0.5, 0.5] });
  optC.loadStateDict(optB.stateDict());
  assert.deepEqual(optC.paramGroups[0]!.betas, [0.9, 0.999]);
  assert.equal(optC.paramGroups[0]!.weightDecay, 0.05);
  run(optC, c);
  assertClose(c, a, 'resumed after two steps = three steps', TOL64);
  assert.throws(() => new AdamW([a], { lr: 1, betas: [0.9, 1] }), /betas must be in \[0, 1\)/);
  assert.throws(() => new AdamW([a], { lr: -1 }), /lr must be ≥ 0/);
  for (const o of [optA, optB, optC]) o.dispose();
});
