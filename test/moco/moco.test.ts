// MoCo against a PyTorch implementation of REFERENCE.md's algorithm, written here: same initial weights, same
// batches, same shuffle permutations, same initial queue → same losses, logits, weights and queue. The two-step
// comparison runs in float64 on both sides (TOL64 says why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { MoCo, instanceAccuracy } from '../../src/moco/index.js';
import { SGD } from '../../src/optim/index.js';
import { PY_SPLIT_BN, TOL64, assertClose, pytorch } from '../helpers/pytorch.js';

const TOL = { rtol: 1e-4, atol: 1e-5 };

const PY_MOCO = (symmetric: boolean): string => `
import torchvision
${PY_SPLIT_BN}
def enc():
    m = torchvision.models.resnet18(num_classes=DIM, norm_layer=lambda c: SplitBN(c, 2))
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity()
    return m.double()
DIM, K, M, T = 16, 12, 0.99, 0.1
q_enc, k_enc = enc(), enc()
q_enc.load_state_dict({k[len('encoder_q.'):]: v for k, v in I.items() if k.startswith('encoder_q.')})
k_enc.load_state_dict({k[len('encoder_k.'):]: v for k, v in I.items() if k.startswith('encoder_k.')})
for p in k_enc.parameters(): p.requires_grad = False
queue = I['queue'].clone(); ptr = 0
opt = torch.optim.SGD(q_enc.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
def keys(x, perm):
    with torch.no_grad():
        k = F.normalize(k_enc(x[perm]), dim=1)
        return k[torch.argsort(perm)]
def contrastive(xq, k):
    q = F.normalize(q_enc(xq), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue], 1) / T
    return logits, F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))
def enqueue(k):
    global ptr
    n = k.shape[0]; first = min(n, K - ptr)
    queue[:, ptr:ptr + first] = k[:first].t()
    if first < n: queue[:, :n - first] = k[first:].t()
    ptr = (ptr + n) % K
for step in range(2):
    xq, xk = I['xq%d' % step], I['xk%d' % step]
    with torch.no_grad():
        for pq, pk in zip(q_enc.parameters(), k_enc.parameters()): pk.data.mul_(M).add_(pq.data, alpha=1 - M)
    if ${symmetric ? 'True' : 'False'}:
        k2 = keys(xk, I['perm%d' % step]); k1 = keys(xq, I['permb%d' % step])
        logits, l1 = contrastive(xq, k2); _, l2 = contrastive(xk, k1); loss = l1 + l2
        newk = torch.cat([k1, k2])
    else:
        k = keys(xk, I['perm%d' % step]); logits, loss = contrastive(xq, k); newk = k
    opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad(): enqueue(newk)
    O['loss%d' % step] = loss.detach(); O['logits%d' % step] = logits.detach()
for n, p in q_enc.named_parameters(): O['q.' + n] = p.detach()
for n, p in k_enc.named_parameters(): O['k.' + n] = p.detach()
for n, b in q_enc.named_buffers(): O['qb.' + n] = b
O['queue'] = queue; O['ptr'] = torch.tensor([ptr])
`;

for (const symmetric of [false, true]) {
  test(`two MoCo steps match PyTorch (symmetric ${symmetric}): losses, logits, weights, queue with wrap-around`, () => {
    torch.manualSeed(21);
    const moco = new MoCo({
      arch: 'resnet18',
      cifarStem: true,
      dim: 16,
      K: 12,
      m: 0.99,
      T: 0.1,
      bnSplits: 2,
      symmetric,
    }).to('float64');
    const inputs: Record<string, Tensor> = {};
    for (const [k, v] of moco.stateDict()) inputs[k] = v.clone();
    for (let s = 0; s < 2; s++) {
      inputs[`xq${s}`] = torch.randn([4, 3, 16, 16]).to('float64');
      inputs[`xk${s}`] = torch.randn([4, 3, 16, 16]).to('float64');
      inputs[`perm${s}`] = torch.randperm(4);
      inputs[`permb${s}`] = torch.randperm(4);
    }
    const ref = pytorch(PY_MOCO(symmetric), inputs);
    const opt = new SGD(moco.trainableParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
    for (let s = 0; s < 2; s++) {
      torch.tidy(() => {
        const out = moco.forwardPair(inputs[`xq${s}`]!, inputs[`xk${s}`]!, {
          keyPerm: inputs[`perm${s}`],
          keyPerm2: inputs[`permb${s}`],
        });
        opt.zeroGrad();
        out.loss.backward();
        opt.step();
        assertClose(out.loss.detach().reshape(), ref[`loss${s}`]!, `loss step ${s}`, TOL64);
        assertClose(out.logits.detach(), ref[`logits${s}`]!, `logits step ${s}`, TOL64);
        assert.deepEqual(out.labels.toArray(), [0, 0, 0, 0]);
        return undefined;
      });
    }
    for (const [n, p] of moco.encoderQ.namedParameters()) assertClose(p, ref[`q.${n}`]!, `query weight ${n}`, TOL64);
    for (const [n, p] of moco.encoderK.namedParameters()) assertClose(p, ref[`k.${n}`]!, `key weight ${n}`, TOL64);
    for (const [n, b] of moco.encoderQ.namedBuffers())
      if (b.dtype === 'float64') assertClose(b, ref[`qb.${n}`]!, `query buffer ${n}`, TOL64);
    assertClose(moco.queue, ref.queue!, 'queue', TOL64);
    assert.equal(moco.queuePtr, ref.ptr!.item());
    assert.equal(moco.queuePtr, symmetric ? 16 % 12 : 8);
  });
}

test('queue wraps around for batches that do not divide K; oversize batches are refused', () => {
  const moco = new MoCo({ arch: 'resnet18', cifarStem: true, width: 8, dim: 4, K: 10, m: 0.9, T: 0.2 });
  const k1 = torch.eye(4).repeat(2, 1).narrow(0, 0, 7);
  moco.dequeueAndEnqueue(k1);
  assert.equal(moco.queuePtr, 7);
  const k2 = torch.full([5, 4], 0.5);
  moco.dequeueAndEnqueue(k2);
  assert.equal(moco.queuePtr, 2);
  const q = moco.queue.t();
  assert.deepEqual(q.select(0, 9).toArray(), [0.5, 0.5, 0.5, 0.5]);
  assert.deepEqual(q.select(0, 1).toArray(), [0.5, 0.5, 0.5, 0.5]);
  assert.deepEqual(q.select(0, 2).toArray(), [0, 0, 1, 0]);
  assert.throws(() => moco.dequeueAndEnqueue(torch.zeros([11, 4])), /11 keys in one step exceed the queue size K=10/);
});

test('key encoder starts as a copy, gets no gradients, and follows by momentum', () => {
  const moco = new MoCo({ arch: 'resnet18', cifarStem: true, width: 8, dim: 4, K: 16, m: 0.5, T: 0.2 });
  const [q0] = moco.encoderQ.parameters();
  const [k0] = moco.encoderK.parameters();
  assert.ok(q0!.allclose(k0!));
  assert.ok(moco.encoderK.parameters().every((p) => !p.requiresGrad));
  const before = k0!.clone();
  torch.noGrad(() => q0!.add_(1));
  moco.momentumUpdate();
  assertClose(k0!, before.add(0.5), 'k = 0.5 k + 0.5 (k + 1)', TOL);
  assert.throws(() => new MoCo({ m: 1 }), /m must be in \[0, 1\)/);
  assert.throws(() => new MoCo({ T: 0 }), /T must be > 0/);
  assert.deepEqual(
    [...moco.stateDict().keys()].filter((k) => !k.startsWith('encoder_')),
    ['queue', 'queue_ptr'],
  );
  assert.ok(moco.stateDict().has('encoder_q.fc.weight'));
  // After to() (a device or dtype change replaces every tensor) the momentum update follows the new tensors.
  const moved = new MoCo({ arch: 'resnet18', cifarStem: true, width: 8, dim: 4, K: 16, m: 0.5, T: 0.2 }).to('float64');
  const [mq] = moved.encoderQ.parameters();
  const [mk] = moved.encoderK.parameters();
  assert.equal(mk!.dtype, 'float64');
  const mkBefore = mk!.clone();
  torch.noGrad(() => mq!.add_(2));
  moved.momentumUpdate();
  assertClose(mk!, mkBefore.add(1), 'momentum update after to()', TOL);
  const v2 = new MoCo({ arch: 'resnet18', cifarStem: true, width: 8, dim: 4, K: 16, head: 'mlp' });
  assert.ok(v2.stateDict().has('encoder_q.fc.0.weight') && v2.stateDict().has('encoder_q.fc.2.weight'));
});

test('instanceAccuracy equals main_moco.py accuracy(output, target, topk=(1, 5))', () => {
  torch.manualSeed(7);
  // Logits where the positive is often near the top: a shifted positive column.
  const logits = torch.tidy(() => {
    const l = torch.randn([64, 33]);
    return torch.cat([l.narrow(1, 0, 1).add(1.5), l.narrow(1, 1, 32)], 1);
  });
  const ref = pytorch(
    `
def accuracy(output, target, topk=(1,)):
    # main_moco.py's accuracy, verbatim in substance
    with torch.no_grad():
        maxk = max(topk)
        batch_size = target.size(0)
        _, pred = output.topk(maxk, 1, True, True)
        pred = pred.t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        return [correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size) for k in topk]
a1, a5 = accuracy(logits, torch.zeros(logits.shape[0], dtype=torch.long), topk=(1, 5))
O['acc'] = torch.cat([a1, a5])
`,
    { logits },
  );
  const [acc1, acc5] = instanceAccuracy(logits, [1, 5]);
  const want = ref.acc!.toArray();
  assert.ok(acc1! > 0 && acc1! < 100 && acc5! > acc1!, `acc1 ${acc1} acc5 ${acc5}`);
  assert.ok(
    Math.abs(acc1! - want[0]!) < 1e-4 && Math.abs(acc5! - want[1]!) < 1e-4,
    `ours ${acc1}/${acc5}, main_moco.py ${want.join('/')}`,
  );
  logits.dispose();
});
