// The cost of the three mechanisms (MoCo v1 Fig. 3; MoCo v2 report's table: 8 V100s, batch 256 = 32 a GPU,
// MoCo 5.0 GB and 53 h, end-to-end 7.4 GB and 65 h). For ResNet-50 at 224 px and ResNet-18 (CIFAR stem) at
// 32 px, at 32 images a step, each mechanism's real training step (forward, backward, SGD, its own updates) runs
// in a fresh process on random images: the median step time and the process's peak RSS (getrusage high-water
// mark, over the warm-up and timed steps) and its increase over the model-only baseline (RSS after building
// the model, optimizer state and inputs). The largest batch that fits --memory-gb (default: this machine's
// memory) is extrapolated from the peak RSS at batches 8, 16 and 32 (least-squares line, fresh processes).
// One JSON line. Usage: npm run bench:mechanisms [-- --memory-gb 16 --steps 3]
import { spawnSync } from 'node:child_process';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { createMechanism, type MechanismName, type MechanismOpts } from '../src/moco/index.js';
import { SGD } from '../src/optim/index.js';
import { stepRng, trainStep } from '../src/train/index.js';
import { median, round } from './common.js';

interface Backbone {
  name: string;
  size: number;
  opts: MechanismOpts;
  bankSize: number;
}
const BACKBONES: Backbone[] = [
  // main_moco.py's v2 settings; the bank has one row per ImageNet training image.
  {
    name: 'resnet50_224',
    size: 224,
    bankSize: 1_281_167,
    opts: { arch: 'resnet50', dim: 128, K: 65536, m: 0.999, T: 0.2, head: 'mlp' },
  },
  // The CIFAR-10 demo's settings; one row per CIFAR-10 training image.
  {
    name: 'resnet18_cifar_32',
    size: 32,
    bankSize: 50_000,
    opts: { arch: 'resnet18', cifarStem: true, dim: 128, K: 4096, m: 0.99, T: 0.1, head: 'fc' },
  },
];
const MECHS: MechanismName[] = ['moco', 'end-to-end', 'memory-bank'];
const BATCH = 32;
const FIT_BATCHES = [8, 16, 32];
const SEED = { memory: round(7.4 / 5.0), time: round(65 / 53) };

interface ChildArgs {
  backbone: string;
  mechanism: MechanismName;
  batch: number;
  steps: number;
  warmup: number;
}
interface ChildResult {
  stepMs: number[];
  baselineRssMB: number;
  peakRssMB: number;
  bankMB?: number;
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!(v > 0)) throw new Error(`${name} expects a positive number, got '${process.argv[i + 1]}'`);
  return v;
}

/** One case in this (fresh) process. */
function child(a: ChildArgs): ChildResult {
  const b = BACKBONES.find((x) => x.name === a.backbone)!;
  torch.manualSeed(0);
  const mech = createMechanism({ ...b.opts, mechanism: a.mechanism, bnSplits: 1 }, { bankSize: b.bankSize });
  const opt = new SGD(mech.trainableParameters(), { lr: 0.03, momentum: 0.9, weightDecay: 1e-4 });
  const views = Array.from({ length: mech.viewsPerImage }, () => torch.randn([a.batch, 3, b.size, b.size]));
  const indices = Int32Array.from({ length: a.batch }, (_, i) => (i * 7919) % b.bankSize);
  const baseline = process.memoryUsage().rss;
  const ms: number[] = [];
  for (let s = 0; s < a.warmup + a.steps; s++) {
    const t0 = performance.now();
    torch.tidy(() => {
      const out = trainStep(mech, opt, { views, indices }, mech.randomness(stepRng(0, 0, s), a.batch));
      out.loss.item();
      return undefined;
    });
    if (s >= a.warmup) ms.push(performance.now() - t0);
  }
  return {
    stepMs: ms,
    baselineRssMB: baseline / 2 ** 20,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    ...(a.mechanism === 'memory-bank' ? { bankMB: (b.bankSize * (b.opts.dim ?? 128) * 4) / 2 ** 20 } : {}),
  };
}

function fresh(a: ChildArgs): ChildResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(a)], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  if (r.status !== 0)
    throw new Error(`bench case ${JSON.stringify(a)} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

/** Least-squares line through (x, y). */
function fit(xs: number[], ys: number[]): { intercept: number; slope: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  const slope = xs.reduce((s, x, i) => s + (x - mx) * (ys[i]! - my), 0) / xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  return { intercept: my - slope * mx, slope };
}

if (process.argv[2] === '--child') {
  console.log(JSON.stringify(child(JSON.parse(process.argv[3]!) as ChildArgs)));
} else {
  const steps = arg('--steps', 3);
  const memoryGB = arg('--memory-gb', totalmem() / 2 ** 30);
  const out: Record<string, unknown> = {
    bench: 'mechanisms',
    threads: torch.getNumThreads(),
    torch: torch.version,
    batch: BATCH,
    steps,
    warmup: 1,
    memoryGB: round(memoryGB, 2),
    seed: {
      memoryE2eOverMoco: SEED.memory,
      timeE2eOverMoco: SEED.time,
      note: '8 V100, batch 256 (32 a GPU): MoCo 5.0 GB 53 h, end-to-end 7.4 GB 65 h',
    },
  };
  for (const b of BACKBONES) {
    const res: Record<
      string,
      { stepMs: number; peakRssMB: number; baselineRssMB: number; increaseMB: number; bankMB?: number }
    > = {};
    for (const m of MECHS) {
      const r = fresh({ backbone: b.name, mechanism: m, batch: BATCH, steps, warmup: 1 });
      res[m] = {
        stepMs: round(median(r.stepMs), 1),
        peakRssMB: round(r.peakRssMB, 1),
        baselineRssMB: round(r.baselineRssMB, 1),
        increaseMB: round(r.peakRssMB - r.baselineRssMB, 1),
        ...(r.bankMB ? { bankMB: round(r.bankMB, 1) } : {}),
      };
    }
    const ratio = (m: MechanismName): Record<string, number> => ({
      peakRss: round(res[m]!.peakRssMB / res.moco!.peakRssMB),
      increase: round(res[m]!.increaseMB / res.moco!.increaseMB),
      time: round(res[m]!.stepMs / res.moco!.stepMs),
    });
    // Peak RSS grows linearly with the batch (activations); its intercept is what does not (weights, optimizer, queue).
    const largest: Record<string, unknown> = {
      method: `least-squares line through the peak RSS at batches ${FIT_BATCHES.join(', ')} (1 step, fresh processes), solved for ${round(memoryGB, 2)} GiB`,
    };
    for (const m of ['moco', 'end-to-end'] as const) {
      const peaks = FIT_BATCHES.map((n) =>
        n === BATCH
          ? res[m]!.peakRssMB
          : fresh({ backbone: b.name, mechanism: m, batch: n, steps: 0, warmup: 1 }).peakRssMB,
      );
      const f = fit(FIT_BATCHES, peaks);
      largest[m] = {
        batch: Math.max(0, Math.floor((memoryGB * 1024 - f.intercept) / f.slope)),
        fixedMB: round(f.intercept, 1),
        mbPerImage: round(f.slope, 2),
        peaksMB: peaks.map((p) => round(p, 1)),
      };
    }
    out[b.name] = {
      ...res,
      ratios: { endToEndOverMoco: ratio('end-to-end'), memoryBankOverMoco: ratio('memory-bank') },
      largestBatch: largest,
    };
  }
  console.log(JSON.stringify(out));
}
