// The memory bank (Wu et al. 2018; MoCo v1 Fig. 3b) against a PyTorch implementation of its definition: same
// weights, bank, images, indices and sampled negatives → same losses, logits, weights and bank after two steps
// whose images overlap (the second step's positives are the first step's updated vectors), in float64 on both
// sides (TOL64 says why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { MemoryBank, type BankSampling } from '../../src/moco/index.js';
import { SGD } from '../../src/optim/index.js';
import { PY_QUERY_ENCODER_SGD, TOL64, assertClose, pytorch } from '../helpers/pytorch.js';

const IDX = [
  [0, 3, 5, 7],
  [3, 1, 7, 9],
];

const PY_BANK = (sampling: BankSampling): string => `
${PY_QUERY_ENCODER_SGD(16)}DIM, T, M = 16, 0.1, 0.5
bank = I['bank'].clone()
for step in range(2):
    x, idx, neg = I['x%d' % step], I['idx%d' % step], I['neg%d' % step]
    q = F.normalize(f(x), dim=1)
    v = bank[idx]                                   # the stored vectors of the same images (no gradient)
    l_pos = (q * v).sum(1, keepdim=True)
    if ${sampling === 'shared' ? 'True' : 'False'}:
        l_neg = q @ bank[neg].t()                   # K negatives shared by the batch
    else:
        l_neg = torch.bmm(bank[neg], q.unsqueeze(2)).squeeze(2)   # K negatives per sample
    logits = torch.cat([l_pos, l_neg], 1) / T
    loss = F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))
    opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        bank[idx] = F.normalize(M * v + (1 - M) * q, dim=1)
    O['loss%d' % step] = loss.detach(); O['logits%d' % step] = logits.detach()
for n, p in f.named_parameters(): O['p.' + n] = p.detach()
O['bank'] = bank
`;

for (const sampling of ['shared', 'per-sample'] as const) {
  test(`two memory-bank steps (--bank-sampling ${sampling}) match PyTorch: losses, logits, weights, bank update`, () => {
    torch.manualSeed(9);
    const mb = new MemoryBank({
      size: 10,
      arch: 'resnet18',
      cifarStem: true,
      dim: 16,
      K: 6,
      T: 0.1,
      bnSplits: 2,
      sampling,
    }).to('float64');
    const inputs: Record<string, Tensor> = {};
    for (const [k, v] of mb.stateDict()) inputs[k] = v.clone();
    for (let s = 0; s < 2; s++) {
      inputs[`x${s}`] = torch.randn([4, 3, 16, 16]).to('float64');
      inputs[`idx${s}`] = torch.tensor(Int32Array.from(IDX[s]!)).long();
      inputs[`neg${s}`] = torch.randint(0, 10, sampling === 'shared' ? [6] : [4, 6]);
    }
    const ref = pytorch(PY_BANK(sampling), inputs);
    const opt = new SGD(mb.trainableParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
    for (let s = 0; s < 2; s++) {
      torch.tidy(() => {
        const out = mb.step(
          { views: [inputs[`x${s}`]!], indices: Int32Array.from(IDX[s]!) },
          { negatives: inputs[`neg${s}`] },
        );
        opt.zeroGrad();
        out.loss.backward();
        opt.step();
        assertClose(out.loss.detach().reshape(), ref[`loss${s}`]!, `loss step ${s}`, TOL64);
        assertClose(out.logits.detach(), ref[`logits${s}`]!, `logits step ${s}`, TOL64);
        return undefined;
      });
    }
    for (const [n, p] of mb.encoderQ.namedParameters()) assertClose(p, ref[`p.${n}`]!, `weight ${n}`, TOL64);
    assertClose(mb.bank, ref.bank!, 'bank', TOL64);
    // Rows of the bank stay unit vectors; rows no step touched are unchanged.
    const norms = mb.bank.norm(2, { dim: 1 }).toArray();
    assert.ok(
      norms.every((v) => Math.abs(v - 1) < 1e-5),
      `norms ${norms.join(', ')}`,
    );
    assertClose(mb.bank.select(0, 2), inputs.bank!.select(0, 2), 'untouched row 2', { rtol: 0, atol: 0 });
  });
}

test('the bank is a checkpoint tensor; a bank that would not fit is refused, saying how much it needs', () => {
  const mb = new MemoryBank({ size: 12, arch: 'resnet18', cifarStem: true, width: 8, dim: 4, K: 5 });
  assert.deepEqual(mb.stateDict().get('bank')!.shape, [12, 4]);
  assert.throws(
    () => new MemoryBank({ size: 1_281_167, dim: 128, memoryLimitBytes: 2 ** 20 }),
    /memory bank of 1281167 images × 128 dims \(float32\) needs 625\.6 MiB, more than the 1\.0 MiB available; use a smaller --moco-dim or --train-subset/,
  );
  assert.throws(() => new MemoryBank({ size: 10, momentum: 1 }), /momentum must be in \[0, 1\)/);
  assert.throws(
    () => mb.step({ views: [torch.randn([2, 3, 16, 16])], indices: new Int32Array(3) }),
    /3 dataset indices for a batch of 2 images/,
  );
});
