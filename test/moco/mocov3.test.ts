// MoCo v3 against a PyTorch implementation of the official semantics (builder.py's MoCo / MoCo_ResNet, main_moco.py's
// per-iteration momentum, optimizer.py's LARS), written here: same initial weights (loaded by the official
// state-dict names), same batches → the same loss and logits, every gradient, every weight and BN running statistic
// after each of two steps, in float64 (TOL64 says why). Plus the schedules and the pieces (MLP heads, BatchNorm1d).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F, Tensor } from '../../src/torch/index.js';
import { MoCoV3, createMechanism } from '../../src/moco/index.js';
import { BatchNorm1d } from '../../src/nn/index.js';
import { mlpHead } from '../../src/models/index.js';
import { LARS, cosineMomentum, warmupCosineLr } from '../../src/optim/index.js';
import { TOL64, assertClose, pytorch } from '../helpers/pytorch.js';

const W = 8;
const DIM = 16;
const MLP_DIM = 32;
const T = 0.2;
/** The momentum and lr of each step: the momentum changes between steps, as under --moco-m-cos. */
const MS = [0.99, 0.995];
const LRS = [0.6, 0.45];

// A ResNet-18 with the CIFAR stem at first-stage width W, torchvision's module names (the peer's Block); the
// weights come from ours, so its init does not matter. MLPs and the model as builder.py builds them.
const PY_MOCOV3 = `
from builder import mlp
W, DIM, MLP_DIM, T = ${W}, ${DIM}, ${MLP_DIM}, ${T}
MS, LRS = ${JSON.stringify(MS)}, ${JSON.stringify(LRS)}

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (self.downsample(x) if self.downsample is not None else x))

class ResNet18(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, W, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(W); self.relu = nn.ReLU(inplace=True)
        cin = W
        for i, c in enumerate([W, 2 * W, 4 * W, 8 * W]):
            setattr(self, 'layer%d' % (i + 1), nn.Sequential(BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1)))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))

class MoCo(nn.Module):
    """builder.py's MoCo with MoCo_ResNet's heads, one process (concat_all_gather is the identity, rank 0)."""
    def __init__(self, base_encoder, dim=256, mlp_dim=4096, T=1.0):
        super().__init__()
        self.T = T
        self.base_encoder = base_encoder(num_classes=mlp_dim)
        self.momentum_encoder = base_encoder(num_classes=mlp_dim)
        self._build_projector_and_predictor_mlps(dim, mlp_dim)
        for param_b, param_m in zip(self.base_encoder.parameters(), self.momentum_encoder.parameters()):
            param_m.data.copy_(param_b.data)
            param_m.requires_grad = False

    _build_mlp = staticmethod(mlp)

    def _build_projector_and_predictor_mlps(self, dim, mlp_dim):
        hidden_dim = self.base_encoder.fc.weight.shape[1]
        del self.base_encoder.fc, self.momentum_encoder.fc
        self.base_encoder.fc = self._build_mlp(2, hidden_dim, mlp_dim, dim)
        self.momentum_encoder.fc = self._build_mlp(2, hidden_dim, mlp_dim, dim)
        self.predictor = self._build_mlp(2, dim, mlp_dim, dim, False)

    @torch.no_grad()
    def _update_momentum_encoder(self, m):
        for param_b, param_m in zip(self.base_encoder.parameters(), self.momentum_encoder.parameters()):
            param_m.data = param_m.data * m + param_b.data * (1. - m)

    def contrastive_loss(self, q, k):
        q = nn.functional.normalize(q, dim=1)
        k = nn.functional.normalize(k, dim=1)
        logits = torch.einsum('nc,mc->nm', [q, k]) / self.T
        N = logits.shape[0]
        labels = torch.arange(N, dtype=torch.long)
        self.logits.append(logits.detach())  # for the comparison only
        return nn.CrossEntropyLoss()(logits, labels) * (2 * self.T)

    def forward(self, x1, x2, m):
        q1 = self.predictor(self.base_encoder(x1))
        q2 = self.predictor(self.base_encoder(x2))
        with torch.no_grad():
            self._update_momentum_encoder(m)
            k1 = self.momentum_encoder(x1)
            k2 = self.momentum_encoder(x2)
        self.logits = []
        return self.contrastive_loss(q1, k2) + self.contrastive_loss(q2, k1)

class LARS(torch.optim.Optimizer):
    """optimizer.py's LARS."""
    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, trust_coefficient=0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, trust_coefficient=trust_coefficient))
    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g['params']:
                dp = p.grad
                if dp is None:
                    continue
                if p.ndim > 1:
                    dp = dp.add(p, alpha=g['weight_decay'])
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(param_norm > 0., torch.where(update_norm > 0, (g['trust_coefficient'] * param_norm / update_norm), one), one)
                    dp = dp.mul(q)
                param_state = self.state[p]
                if 'mu' not in param_state:
                    param_state['mu'] = torch.zeros_like(p)
                mu = param_state['mu']
                mu.mul_(g['momentum']).add_(dp)
                p.add_(mu, alpha=-g['lr'])

model = MoCo(ResNet18, DIM, MLP_DIM, T).double()
model.load_state_dict({k: v for k, v in I.items() if not k.startswith('x')})
model.train()
opt = LARS(model.parameters(), lr=LRS[0], weight_decay=1e-2)
for step in range(2):
    for g in opt.param_groups: g['lr'] = LRS[step]
    loss = model(I['x1_%d' % step], I['x2_%d' % step], MS[step])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    O['loss%d' % step] = loss.detach(); O['logits%d' % step] = model.logits[0]
    for n, p in model.named_parameters():
        if p.grad is not None: O['g%d.%s' % (step, n)] = p.grad
    opt.step()
    for n, t in model.state_dict().items(): O['s%d.%s' % (step, n)] = t.clone()
`;

test('two MoCo v3 steps with LARS match the official semantics in PyTorch: loss, logits, every gradient, weight and BN statistic', () => {
  torch.manualSeed(31);
  const model = new MoCoV3({ arch: 'resnet18', cifarStem: true, width: W, dim: DIM, mlpDim: MLP_DIM, T, m: MS[0] }).to(
    'float64',
  );
  const inputs: Record<string, Tensor> = {};
  for (const [k, v] of model.stateDict()) inputs[k] = v.clone();
  for (let s = 0; s < 2; s++) {
    inputs[`x1_${s}`] = torch.randn([6, 3, 16, 16]).to('float64');
    inputs[`x2_${s}`] = torch.randn([6, 3, 16, 16]).to('float64');
  }
  const ref = pytorch(PY_MOCOV3, inputs);
  const trainable = new Set(model.trainableParameters());
  const named = model.namedParameters();
  assert.equal(named.filter(([, p]) => trainable.has(p)).length, trainable.size);
  const opt = new LARS(model.trainableParameters(), { lr: LRS[0]!, weightDecay: 1e-2 });
  for (let s = 0; s < 2; s++) {
    torch.tidy(() => {
      opt.setLr(LRS[s]!);
      model.m = MS[s]!;
      const out = model.step({ views: [inputs[`x1_${s}`]!, inputs[`x2_${s}`]!], indices: new Int32Array(6) });
      opt.zeroGrad();
      out.loss.backward();
      assertClose(out.loss.detach().reshape(), ref[`loss${s}`]!, `loss step ${s}`, TOL64);
      assertClose(out.logits.detach(), ref[`logits${s}`]!, `logits step ${s}`, TOL64);
      assert.deepEqual(out.labels.toArray(), [0, 1, 2, 3, 4, 5]);
      let grads = 0;
      for (const [n, p] of named) {
        const want = ref[`g${s}.${n}`];
        if (!trainable.has(p)) {
          assert.equal(p.grad, null, `momentum encoder parameter ${n} got a gradient`);
          assert.equal(want, undefined);
          continue;
        }
        assert.ok(p.grad && want, `gradient of ${n} (ours ${!!p.grad}, PyTorch ${!!want})`);
        assertClose(p.grad, want, `gradient of ${n}, step ${s}`, TOL64);
        grads++;
      }
      assert.equal(grads, trainable.size);
      opt.step();
      return undefined;
    });
    // Every parameter and buffer — base, momentum encoder (its own BN statistics) and predictor — after the step.
    const sd = model.stateDict();
    assert.deepEqual(
      [...sd.keys()],
      Object.keys(ref)
        .filter((k) => k.startsWith(`s${s}.`))
        .map((k) => k.slice(`s${s}.`.length)),
    );
    for (const [n, t] of sd) assertClose(t, ref[`s${s}.${n}`]!, `${n} after step ${s}`, TOL64);
  }
});

test('the momentum encoder starts as a copy, gets no gradient, follows θk ← m·θk + (1−m)·θq with the m of each call', () => {
  const model = new MoCoV3({ arch: 'resnet18', cifarStem: true, width: 4, dim: 4, mlpDim: 8, m: 0.5 });
  const [b0] = model.baseEncoder.parameters();
  const [m0] = model.momentumEncoder.parameters();
  assert.ok(b0!.allclose(m0!));
  assert.ok(model.momentumEncoder.parameters().every((p) => !p.requiresGrad));
  assert.equal(
    model.trainableParameters().length,
    model.baseEncoder.parameters().length + model.predictor.parameters().length,
  );
  const before = m0!.clone();
  torch.noGrad(() => b0!.add_(1));
  model.momentumUpdate();
  assertClose(m0!, before.add(0.5), 'm 0.5', { rtol: 1e-6, atol: 1e-6 });
  model.m = 0.75;
  model.momentumUpdate();
  assertClose(m0!, before.add(0.5 * 0.75 + 0.25), 'm 0.75', { rtol: 1e-6, atol: 1e-6 });
  assert.throws(() => {
    model.m = 1.5;
  }, /m must be in \[0, 1\]/);
  assert.throws(() => new MoCoV3({ T: 0 }), /T must be > 0/);
  // Official names: base_encoder.*, momentum_encoder.*, predictor.*; projector fc.{0,1,3,4}, predictor {0,1,3}.
  const keys = [...model.stateDict().keys()];
  for (const k of [
    'base_encoder.fc.0.weight',
    'base_encoder.fc.1.weight',
    'base_encoder.fc.4.running_mean',
    'momentum_encoder.fc.3.weight',
    'predictor.0.weight',
    'predictor.1.bias',
    'predictor.3.weight',
  ]) {
    assert.ok(keys.includes(k), k);
  }
  for (const k of ['base_encoder.fc.4.weight', 'base_encoder.fc.0.bias', 'predictor.4.running_mean'])
    assert.ok(!keys.includes(k), k);
  // zero_init_residual: each block's last BN starts at γ = 0.
  assert.equal(model.baseEncoder.stateDict().get('layer1.0.bn2.weight')!.abs().sum().item(), 0);
  // The factory builds it; the similarities split the N×N logits into the diagonal and the rest.
  const made = createMechanism({
    mechanism: 'mocov3',
    arch: 'resnet18',
    cifarStem: true,
    width: 4,
    dim: 4,
    mlpDim: 8,
    T: 0.5,
  });
  assert.ok(made instanceof MoCoV3);
  assert.equal(made.T, 0.5);
  assert.equal((made as MoCoV3).m, 0.99);
  torch.tidy(() => {
    const x = torch.randn([3, 3, 8, 8]);
    const out = made.step({ views: [x, torch.randn([3, 3, 8, 8])], indices: new Int32Array(3) });
    const { lPos, lNeg } = out.similarities();
    assert.deepEqual(lPos.shape, [3, 1]);
    assert.deepEqual(lNeg.shape, [3, 2]);
    const l = out.logits.detach().mul(0.5).toArray();
    assert.deepEqual(
      lPos.toArray().map((v) => v.toFixed(6)),
      [l[0]!, l[4]!, l[8]!].map((v) => v.toFixed(6)),
    );
    assert.deepEqual(
      lNeg.toArray().map((v) => v.toFixed(6)),
      [l[1]!, l[2]!, l[3]!, l[5]!, l[6]!, l[7]!].map((v) => v.toFixed(6)),
    );
    return undefined;
  });
});

test('gathered keys: row i of rank r has its positive at column N·r + i (the multi-process hook)', () => {
  torch.manualSeed(5);
  const model = new MoCoV3({ arch: 'resnet18', cifarStem: true, width: 4, dim: 4, mlpDim: 8, T: 0.5 });
  const other = torch.randn([3, 4]);
  model.dist = { rank: 1, gatherKeys: (k) => torch.cat([F.normalize(other, { dim: 1 }), k], 0) };
  torch.tidy(() => {
    const out = model.forwardPair(torch.randn([3, 3, 8, 8]), torch.randn([3, 3, 8, 8]));
    assert.deepEqual(out.logits.shape, [3, 6]);
    assert.deepEqual(out.labels.toArray(), [3, 4, 5]);
    return undefined;
  });
});

test("MLP heads are builder.py's _build_mlp; BatchNorm1d matches nn.BatchNorm1d (affine and not)", () => {
  torch.manualSeed(9);
  const head = mlpHead(3, 5, 7, 4, true).to('float64');
  assert.deepEqual(
    [...head.stateDict().keys()],
    [
      '0.weight',
      '1.weight',
      '1.bias',
      '1.running_mean',
      '1.running_var',
      '1.num_batches_tracked',
      '3.weight',
      '4.weight',
      '4.bias',
      '4.running_mean',
      '4.running_var',
      '4.num_batches_tracked',
      '6.weight',
      '7.running_mean',
      '7.running_var',
      '7.num_batches_tracked',
    ],
  );
  const x = torch.randn([6, 5]).to('float64');
  const inputs: Record<string, Tensor> = { x };
  for (const [k, v] of head.stateDict()) inputs[`h.${k}`] = v.clone();
  const ref = pytorch(
    `
from builder import mlp
h = mlp(3, 5, 7, 4).double()
h.load_state_dict({k[2:]: v for k, v in I.items() if k.startswith('h.')})
O['y'] = h(x).detach()
for n, t in h.state_dict().items(): O['s.' + n] = t
h.eval(); O['y_eval'] = h(x).detach()
`,
    inputs,
  );
  assertClose(head.forward(x), ref.y!, 'train-mode output', TOL64);
  for (const [n, t] of head.stateDict()) assertClose(t, ref[`s.${n}`]!, `${n} after one batch`, TOL64);
  head.eval();
  assertClose(head.forward(x), ref.y_eval!, 'eval-mode output', TOL64);
  const noBn = mlpHead(2, 16, 32, 16, false);
  assert.deepEqual(
    [...noBn.stateDict().keys()].filter((k) => k.endsWith('weight')),
    ['0.weight', '1.weight', '3.weight'],
  );
  assert.equal(new BatchNorm1d(3, { affine: false }).weight, null);
  assert.throws(() => new BatchNorm1d(3).forward(torch.randn([2, 3, 4, 4])), /expected a 2-D or 3-D input/);
});

test('schedules: --moco-m-cos momentum and the warm-up + half-cosine lr of main_moco.py', () => {
  const ref = pytorch(`
m0, epochs, lr0, warm = 0.99, 100, 0.6, 10
es = [0, 0.5, 10, 25.25, 50, 99.9]
def adjust_moco_momentum(epoch): return 1. - 0.5 * (1. + math.cos(math.pi * epoch / epochs)) * (1. - m0)
def adjust_learning_rate(epoch):
    if epoch < warm: return lr0 * epoch / warm
    return lr0 * 0.5 * (1. + math.cos(math.pi * (epoch - warm) / (epochs - warm)))
O['m'] = torch.tensor([adjust_moco_momentum(e) for e in es], dtype=torch.float64)
O['lr'] = torch.tensor([adjust_learning_rate(e) for e in es], dtype=torch.float64)
`);
  const es = [0, 0.5, 10, 25.25, 50, 99.9];
  const m = ref.m!.toArray();
  const lr = ref.lr!.toArray();
  es.forEach((e, i) => {
    assert.ok(
      Math.abs(cosineMomentum(0.99, e, 100) - m[i]!) < 1e-15,
      `m at epoch ${e}: ${cosineMomentum(0.99, e, 100)} vs ${m[i]}`,
    );
    assert.ok(
      Math.abs(warmupCosineLr(0.6, e, 10, 100) - lr[i]!) < 1e-15,
      `lr at epoch ${e}: ${warmupCosineLr(0.6, e, 10, 100)} vs ${lr[i]}`,
    );
  });
  assert.equal(cosineMomentum(0.99, 0, 100), 0.99);
  assert.equal(cosineMomentum(0.99, 50, 100), 0.995);
  assert.equal(cosineMomentum(0.99, 100, 100), 1);
  assert.equal(warmupCosineLr(0.6, 0, 10, 100), 0);
});
