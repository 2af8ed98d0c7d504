// One training step (forward + backward + SGD) of a ResNet, through moco-ts and through PyTorch, same machine,
// same threads, same shapes. One JSON line: per model ours_ms, pytorch_ms, ratio (ours / PyTorch; target ≤ 1.05).
// --amp bf16: both sides' forward and loss under CPU autocast in bfloat16 (ours `autocast('cpu', …)`, PyTorch
// `torch.autocast('cpu', torch.bfloat16)`), fp32 master weights and optimizer step, as `moco pretrain --amp bf16`.
// Where the CPU has no native bf16 (AVX-512 BF16 / AMX) both sides emulate it, and the JSON says so (cpu_bf16: []).
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { resnet18, resnet50, type ResNet } from '../src/models/index.js';
import { SGD } from '../src/optim/index.js';
import { parseArgs } from 'node:util';
import { round, runPythonJson, timeMs, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('train-step')) process.exit(0);

const { values: args } = parseArgs({ options: { amp: { type: 'string', default: 'off' }, cases: { type: 'string' } } });
if (args.amp !== 'off' && args.amp !== 'bf16')
  throw new Error(`bench/train-step: --amp ${args.amp} is not one of off, bf16`);
const amp = args.amp === 'bf16';
const threads = torch.getNumThreads();
// Emulated bf16 is an order of magnitude slower than fp32 (a ResNet-18 CIFAR step ~13× here): fewer reps, one warm-up.
const reps = Number(process.env.BENCH_REPS ?? (amp ? 2 : 8));
const warmups = amp ? 1 : 2;

interface Case {
  name: string;
  build: () => ResNet;
  batch: number;
  size: number;
  py: string;
}
const cases: Case[] = [
  {
    name: 'resnet18_cifar_b64',
    build: () => resnet18({ numClasses: 10, cifarStem: true }),
    batch: 64,
    size: 32,
    py: 'm = torchvision.models.resnet18(num_classes=10); m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity()',
  },
  {
    name: 'resnet50_224_b8',
    build: () => resnet50({ numClasses: 1000 }),
    batch: 8,
    size: 224,
    py: 'm = torchvision.models.resnet50()',
  },
];

function ours(c: Case): number {
  torch.manualSeed(0);
  const m = c.build();
  const opt = new SGD(m.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 5e-4 });
  const x = torch.randn([c.batch, 3, c.size, c.size]);
  const y = torch.randint(0, 10, [c.batch]);
  const t = timeMs(
    () =>
      torch.tidy(() => {
        opt.zeroGrad();
        const loss = amp
          ? torch.autocast('cpu', () => F.crossEntropy(m.forward(x), y))
          : F.crossEntropy(m.forward(x), y);
        loss.backward();
        opt.step();
        return undefined;
      }),
    reps,
    warmups,
  );
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
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=${amp ? 'True' : 'False'}):
        loss = F.cross_entropy(m(x), y)
    loss.backward(); opt.step()
for _ in range(${warmups}): step()
ts = []
for _ in range(${reps}):
    t0 = time.perf_counter(); step(); ts.append((time.perf_counter() - t0) * 1000)
ts.sort(); n = len(ts)
print(json.dumps({"ms": ts[n // 2] if n % 2 else (ts[n // 2 - 1] + ts[n // 2]) / 2}))
`;

const result: Record<string, unknown> = {
  bench: 'train-step',
  threads,
  torch: torch.version,
  amp: args.amp,
  ...(amp ? { cpu_bf16: torch.cpuBf16Features() } : {}),
};
const only = args.cases?.split(',');
const unknown = only?.filter((n) => !cases.some((c) => c.name === n));
if (unknown?.length)
  throw new Error(`bench/train-step: --cases ${unknown.join(',')}: not one of ${cases.map((c) => c.name).join(', ')}`);
for (const c of cases.filter((x) => !only || only.includes(x.name))) {
  // Alternate sides twice; keep each side's best median so that a noisy neighbour hurts neither.
  const o: number[] = [];
  const p: number[] = [];
  for (let r = 0; r < (amp ? 1 : 2); r++) {
    o.push(ours(c));
    p.push(runPythonJson<{ ms: number }>(PY(c)).ms);
  }
  const om = Math.min(...o);
  const pm = Math.min(...p);
  result[c.name] = { ours_ms: round(om), pytorch_ms: round(pm), ratio: round(om / pm) };
}
console.log(JSON.stringify(result));
