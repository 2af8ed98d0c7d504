// ResNets against torchvision on identical weights and inputs: outputs, every gradient, BN running stats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { resnet18, resnet50, type ResNet } from '../../src/models/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

const TOL = { rtol: 1e-4, atol: 1e-5 };

function inputsOf(model: ResNet, x: Tensor): Record<string, Tensor> {
  const I: Record<string, Tensor> = { x };
  for (const [k, v] of model.stateDict()) I[`p.${k}`] = v;
  return I;
}

const PY_BUILD = (arch: string, numClasses: number, cifar: boolean): string => `
import torchvision
m = torchvision.models.${arch}(num_classes=${numClasses})
${cifar ? 'm.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity()' : ''}
m.load_state_dict({k[2:]: v for k, v in I.items() if k.startswith('p.')}, strict=True)
`;

function parity(name: string, build: () => ResNet, pyArch: string, cifar: boolean, inputShape: number[]): void {
  test(`${name}: train and eval forward, gradients and running stats match torchvision`, () => {
    torch.manualSeed(11);
    const model = build();
    const x = torch.randn(inputShape);
    const inputs = inputsOf(model, x);
    const ref = pytorch(
      `${PY_BUILD(pyArch, 10, cifar)}
m.train()
y = m(x)
O['train.out'] = y.detach()
(y * torch.arange(y.numel(), dtype=y.dtype).cos().reshape(y.shape)).sum().backward()
for k, p in m.named_parameters(): O['grad.' + k] = p.grad
for k, b in m.named_buffers(): O['buf.' + k] = b
m.eval()
with torch.no_grad(): O['eval.out'] = m(x)
`,
      inputs,
    );
    // Inputs were snapshotted before our forward mutates the running stats.
    model.train();
    const y = model.forward(x);
    assertClose(y.detach(), ref['train.out']!, `${name} train output`, TOL);
    const w = torch
      .arange(0, y.numel(), 1, { dtype: 'float32' })
      .cos()
      .reshape(...y.shape);
    y.mul(w).sum().backward();
    const params = model.namedParameters();
    assert.equal(params.length, Object.keys(ref).filter((k) => k.startsWith('grad.')).length);
    for (const [k, p] of params) assertClose(p.grad!, ref[`grad.${k}`]!, `${name} grad ${k}`, TOL);
    for (const [k, b] of model.namedBuffers())
      assertClose(b.to(ref[`buf.${k}`]!.dtype), ref[`buf.${k}`]!, `${name} buffer ${k}`, TOL);
    model.eval();
    const ye = torch.noGrad(() => model.forward(x));
    assertClose(ye, ref['eval.out']!, `${name} eval output`, TOL);
    model.dispose();
  });
}

parity('resnet18 (CIFAR stem)', () => resnet18({ numClasses: 10, cifarStem: true }), 'resnet18', true, [4, 3, 32, 32]);
parity('resnet18 (ImageNet stem)', () => resnet18({ numClasses: 10 }), 'resnet18', false, [2, 3, 64, 64]);
parity('resnet50', () => resnet50({ numClasses: 10 }), 'resnet50', false, [2, 3, 96, 96]);

test('a torchvision resnet50 state dict exported from PyTorch loads and gives identical logits', () => {
  const x = torch.randn([2, 3, 64, 64]);
  const ref = pytorch(
    `
import torchvision
torch.manual_seed(5)
m = torchvision.models.resnet50()
for mod in m.modules():
    if isinstance(mod, nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5); mod.weight.data.uniform_(0.5, 1.5)
m.eval()
for k, v in m.state_dict().items(): O['p.' + k] = v
with torch.no_grad(): O['logits'] = m(x)
`,
    { x },
  );
  const model = resnet50();
  const sd = new Map(
    Object.entries(ref)
      .filter(([k]) => k.startsWith('p.'))
      .map(([k, v]) => [k.slice(2), v]),
  );
  assert.equal(sd.size, model.stateDict().size);
  model.loadStateDict(sd);
  model.eval();
  const logits = torch.noGrad(() => model.forward(x));
  assertClose(logits, ref.logits!, 'resnet50 logits', TOL);
});

test('state dict names follow torchvision exactly', () => {
  const keys = [...resnet18().stateDict().keys()];
  assert.deepEqual(keys.slice(0, 7), [
    'conv1.weight',
    'bn1.weight',
    'bn1.bias',
    'bn1.running_mean',
    'bn1.running_var',
    'bn1.num_batches_tracked',
    'layer1.0.conv1.weight',
  ]);
  assert.ok(keys.includes('layer2.0.downsample.0.weight'));
  assert.ok(keys.includes('layer2.0.downsample.1.running_var'));
  assert.deepEqual(keys.slice(-2), ['fc.weight', 'fc.bias']);
  const r50 = [...resnet50().stateDict().keys()];
  assert.equal(r50.length, 320);
  assert.ok(r50.includes('layer4.2.bn3.weight'));
});

test('width multiplier and CIFAR stem shapes', () => {
  const m = resnet18({ width: 32, cifarStem: true, numClasses: 128 });
  assert.deepEqual(m.conv1.weight.shape, [32, 3, 3, 3]);
  assert.equal(m.featureDim, 256);
  assert.equal(m.maxpool, null);
  const y = torch.noGrad(() => m.forward(torch.randn([2, 3, 32, 32])));
  assert.deepEqual(y.shape, [2, 128]);
  assert.throws(
    () => m.loadStateDict(resnet18().stateDict()),
    /shape mismatch \(\d+\): conv1\.weight: checkpoint \[64, 3, 7, 7\] vs model \[32, 3, 3, 3\]/,
  );
});

test('torchvision init: kaiming-normal fan_out convs, BN 1/0, zero-init residual', () => {
  torch.manualSeed(0);
  const m = resnet50({ zeroInitResidual: true });
  const w = m.layer3.at(0).child<import('../../src/nn/index.js').Conv2d>('conv2').weight;
  const expectedStd = Math.sqrt(2 / (256 * 9));
  const std = w.std().item();
  assert.ok(Math.abs(std - expectedStd) / expectedStd < 0.02, `std ${std} vs ${expectedStd}`);
  assert.equal(m.bn1.weight.mean().item(), 1);
  assert.equal(m.layer1.at(0).child<import('../../src/nn/index.js').BatchNorm2d>('bn3').weight.abs().sum().item(), 0);
  // The ImageNet stem keeps torchvision's init (only the CIFAR stem is swapped in fresh, as the official demo does).
  const stemStd = Math.sqrt(2 / (64 * 49));
  assert.ok(Math.abs(resnet18().conv1.weight.std().item() - stemStd) / stemStd < 0.03);
});

test('the CIFAR-demo network starts as the official ModelBase does: per-parameter init statistics match torchvision', () => {
  torch.manualSeed(3);
  const m = resnet18({ cifarStem: true, numClasses: 128 });
  const ref = pytorch(`
import torchvision
torch.manual_seed(3)
net = torchvision.models.resnet18(num_classes=128)
# moco/colab ModelBase: conv1 is replaced by a fresh 3x3 conv after torchvision's init; the max-pool is dropped.
net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
for n, p in net.named_parameters():
    O[n] = torch.tensor([p.std().item() if p.numel() > 1 else 0.0, p.abs().max().item(), p.mean().item()])
`);
  for (const [n, p] of m.namedParameters()) {
    const r = ref[n];
    assert.ok(r, `${n} missing in torchvision`);
    const [std, max, mean] = r.toArray() as [number, number, number];
    const ours = [p.numel() > 1 ? p.std().item() : 0, p.abs().max().item(), p.mean().item()];
    // Different draws of the same distributions: the std within a few percent (fewer draws, wider), BN exact.
    const tol = p.numel() < 1000 ? 0.12 : 0.03;
    if (std > 0) assert.ok(Math.abs(ours[0]! - std) / std < tol, `${n}: std ${ours[0]} vs torchvision ${std}`);
    else assert.equal(ours[0], 0, `${n}: constant`);
    if (std === 0) assert.equal(ours[2], mean, `${n}: value`);
    if (/conv1\.weight$/.test(n) && !n.includes('layer'))
      assert.ok(ours[1]! <= max * 1.02 + 1e-6 && max <= 1 / Math.sqrt(27) + 1e-6, `${n}: bounded as nn.Conv2d`);
  }
});
