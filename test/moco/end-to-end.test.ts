// End-to-end (MoCo v1 Fig. 3a) and its NT-Xent variant against PyTorch implementations of their definitions,
// written here from the papers: same initial weights, views and ShuffleBN permutations → same losses, logits
// and weights after two SGD steps (the gradient flows through both views), in float64 on both sides (TOL64 says why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { EndToEnd, instanceAccuracy, type EndToEndLoss } from '../../src/moco/index.js';
import { SGD } from '../../src/optim/index.js';
import { PY_QUERY_ENCODER_SGD, TOL64, assertClose, pytorch } from '../helpers/pytorch.js';

const PY_E2E = (loss: EndToEndLoss): string => `
${PY_QUERY_ENCODER_SGD(16)}DIM, T, N = 16, 0.1, 4
def infonce(q, k):
    # MoCo v1 Sec. 3.2: the keys of the batch; query i's positive is key i, the others its negatives.
    logits = q @ k.t() / T
    return logits, F.cross_entropy(logits, torch.arange(N))
def ntxent(q, k):
    # SimCLR Eq. 1, one term per row of z = [q; k]: l(i, j) = -log exp(s_ij/T) / sum_{m != i} exp(s_im/T), mean of 2N.
    z = torch.cat([q, k]); s = z @ z.t() / T
    terms = []
    for i in range(2 * N):
        j = (i + N) % (2 * N)
        others = torch.cat([s[i, :i], s[i, i + 1:]])
        terms.append(torch.logsumexp(others, 0) - s[i, j])
    logits = s.masked_fill(torch.eye(2 * N, dtype=torch.bool), float('-inf'))
    return logits, torch.stack(terms).mean()
for step in range(2):
    xq, xk, perm = I['xq%d' % step], I['xk%d' % step], I['perm%d' % step]
    q = F.normalize(f(xq), dim=1)
    k = F.normalize(f(xk[perm]), dim=1)[torch.argsort(perm)]   # ShuffleBN, differentiable
    logits, loss = ${loss}(q, k)
    opt.zero_grad(); loss.backward(); opt.step()
    O['loss%d' % step] = loss.detach(); O['logits%d' % step] = logits.detach()
for n, p in f.named_parameters(): O['p.' + n] = p.detach()
for n, b in f.named_buffers(): O['b.' + n] = b
`;

for (const loss of ['infonce', 'ntxent'] as const) {
  test(`two end-to-end steps (--loss ${loss}) match PyTorch: losses, logits, weights`, () => {
    torch.manualSeed(5);
    const e2e = new EndToEnd({ arch: 'resnet18', cifarStem: true, dim: 16, T: 0.1, bnSplits: 2, loss }).to('float64');
    const inputs: Record<string, Tensor> = {};
    for (const [k, v] of e2e.stateDict()) inputs[k] = v.clone();
    for (let s = 0; s < 2; s++) {
      inputs[`xq${s}`] = torch.randn([4, 3, 16, 16]).to('float64');
      inputs[`xk${s}`] = torch.randn([4, 3, 16, 16]).to('float64');
      inputs[`perm${s}`] = torch.randperm(4);
    }
    const ref = pytorch(PY_E2E(loss), inputs);
    const opt = new SGD(e2e.trainableParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
    for (let s = 0; s < 2; s++) {
      torch.tidy(() => {
        const out = e2e.step(
          { views: [inputs[`xq${s}`]!, inputs[`xk${s}`]!], indices: new Int32Array(4) },
          { keyPerm: inputs[`perm${s}`] },
        );
        opt.zeroGrad();
        out.loss.backward();
        opt.step();
        assertClose(out.loss.detach().reshape(), ref[`loss${s}`]!, `loss step ${s}`, TOL64);
        assertClose(out.logits.detach(), ref[`logits${s}`]!, `logits step ${s}`, TOL64);
        assert.deepEqual(out.labels.toArray(), loss === 'infonce' ? [0, 1, 2, 3] : [4, 5, 6, 7, 0, 1, 2, 3]);
        const { lPos, lNeg } = out.similarities();
        // l_pos: the 4 diagonal cosines; l_neg: the 12 off-diagonal ones.
        assert.deepEqual([lPos.numel(), lNeg.numel()], [4, 12]);
        assertClose(
          lPos,
          out.logits.detach().gather(1, out.labels.unsqueeze(1)).flatten().narrow(0, 0, 4).mul(0.1),
          'l_pos = q_i·k_i',
          TOL64,
        );
        return undefined;
      });
    }
    // Both views trained the one encoder: every weight moved as PyTorch's did.
    for (const [n, p] of e2e.encoderQ.namedParameters()) assertClose(p, ref[`p.${n}`]!, `weight ${n}`, TOL64);
    for (const [n, b] of e2e.encoderQ.namedBuffers())
      if (b.dtype === 'float64') assertClose(b, ref[`b.${n}`]!, `buffer ${n}`, TOL64);
    assert.deepEqual(
      [...e2e.stateDict().keys()].filter((k) => !k.startsWith('encoder_q.')),
      [],
    );
  });
}

test('instance accuracy of N×N logits reads row i’s positive at column i', () => {
  const logits = torch.tensor([
    [3, 1, 0],
    [5, 1, 0],
    [0, 1, 2],
  ]);
  const labels = torch.arange(0, 3, 1, { dtype: 'int64' });
  const [acc1, acc5] = instanceAccuracy(logits, [1, 5], labels);
  assert.ok(Math.abs(acc1! - 200 / 3) < 1e-4, `acc1 ${acc1}`);
  assert.equal(acc5, 100);
  assert.throws(() => new EndToEnd({ T: 0 }), /T must be > 0/);
});
