// One training step (forward + backward + SGD) of a ResNet, through moco-ts and through PyTorch, same machine,
// same threads, same shapes. One JSON line: per model ours_ms, pytorch_ms, ratio (ours / PyTorch; target ≤ 1.05).
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { resnet18, resnet50, type ResNet } from '../src/models/index.js';
import { SGD } from '../src/optim/index.js';
import { round, runPythonJson, timeMs, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('train-step')) process.exit(0);

const threads = torch.getNumThreads();
const reps = Number(process.env.BENCH_REPS ?? 8);

interface Case { name: string; build: () => ResNet; batch: number; size: number; py: string }
const cases: Case[] = [
  { name: 'resnet18_cifar_b64', build: () => resnet18({ numClasses: 10, cifarStem: true }), batch: 64, size: 32,
    py: 'm = torchvision.models.resnet18(num_classes=10); m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity()' },
  { name: 'resnet50_224_b8', build: () => resnet50({ numClasses: 1000 }), batch: 8, size: 224, py: 'm = torchvision.models.resnet50()' },
];

function ours(c: Case): number {
  torch.manualSeed(0);
  const m = c.build();
  const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const x = torch.randn([c.batch, 3, c.size, c.size]);
  const y = torch.randint(0, 10, [c.batch]);
  const t = timeMs(() => torch.tidy(() => {
    opt.zeroGrad();
    F.crossEntropy(m.forward(x), y).backward();
    opt.step();
    return undefined;
  }), reps);
  m.dispose();
  opt.dispose();
  return t;
}

const PY = (c: Case): string => `
import json, sys, time, torch, torch.nn as nn, torch.nn.functional as F, torchvision

torch.set_num_threads(${threads}); torch.manual_seed(0)
${c.py}
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
x = torch.randn(${c.batch}, 3, ${c.size}, ${c.size}); y = torch.randint(0, 10, (${c.batch},))
def step():
    opt.zero_grad(set_to_none=True); F.cross_entropy(m(x), y).backward(); opt.step()
for _ in range(2): step()
ts = []
for _ in range(${reps}):
    t0 = time.perf_counter(); step(); ts.append((time.perf_counter() - t0) * 1000)
ts.sort(); n = len(ts)
print(json.dumps({"ms": ts[n // 2] if n % 2 else (ts[n // 2 - 1] + ts[n // 2]) / 2}))
`;

const result: Record<string, unknown> = { bench: 'train-step', threads, torch: torch.version };
for (const c of cases) {
  // Alternate sides twice; keep each side's best median so that a noisy neighbour hurts neither.
  const o: number[] = [];
  const p: number[] = [];
  for (let r = 0; r < 2; r++) {
    o.push(ours(c));
    p.push(runPythonJson<{ ms: number }>(PY(c)).ms);
  }
  const om = Math.min(...o);
  const pm = Math.min(...p);
  result[c.name] = { ours_ms: round(om), pytorch_ms: round(pm), ratio: round(om / pm) };
}
console.log(JSON.stringify(result));
