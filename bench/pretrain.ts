// End-to-end pre-training throughput on real CIFAR-10 JPEGs: `moco pretrain` vs the plain PyTorch peer
// (../shared/peer/torch_moco.py: torchvision transforms, DataLoader with 2 workers), same recipe, same machine,
// one after the other; and what the data pipeline costs our own loop, measured in one process: the library's
// `pretrain` (the loop `moco pretrain` runs, same config) with a twin model stepped between every two of its steps
// on batches already in memory. Step by step interleaving makes both rates see the same machine load, which on a
// shared machine drifts by ±15% between two half-minute runs (docs/benchmarks.md).
// BENCH_REPEATS (default 3) rounds. One JSON line: per width, min/median/max over the rounds of images/s of all
// three, the ratios and the peak RSS of both process trees, each round's figures, and whether the targets held.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { availableParallelism, tmpdir } from 'node:os';
import * as torch from '../src/torch/index.js';
import { createOptimizer } from '../src/optim/index.js';
import {
  mechanismOf,
  pretrain,
  resolveConfig,
  stepPrecisionOf,
  stepRng,
  trainStep,
  type TrainObserver,
} from '../src/train/index.js';
import { PYTHON, lastJson, round, runMeasured, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('pretrain')) process.exit(0);

const root = resolve(new URL('../..', import.meta.url).pathname);
const data = process.env.BENCH_DATA ?? resolve(root, '..', 'shared', 'datasets', 'cifar10');
const peer = process.env.BENCH_PEER ?? resolve(root, '..', 'shared', 'peer', 'torch_moco.py');
const steps = Number(process.env.BENCH_STEPS ?? 8);
const batch = Number(process.env.BENCH_BATCH ?? 256);
const widths = (process.env.BENCH_WIDTHS ?? '32,64').split(',').map(Number);
const threads = availableParallelism();
const WARMUP = 2;
if (!existsSync(data)) throw new Error(`bench/pretrain: CIFAR-10 folder ${data} not found (set BENCH_DATA)`);

/**
 * Our loop end to end and our model alone, step for step in one process: after each step of `pretrain`
 * (data, augmentation, the step, the loop's observers) a twin mechanism of the same config takes one step on
 * fixed in-memory views. Returns images/s of both over the steps after the warm-up.
 */
async function interleaved(width: number, rep: number): Promise<{ e2e: number; model: number }> {
  const c = resolveConfig(data, {
    preset: 'cifar',
    width,
    batchSize: batch,
    maxSteps: steps,
    threads,
    printFreq: 1_000_000,
    out: join(tmpdir(), `moco-bench-il-${process.pid}-${width}-${rep}`),
  });
  const twin = mechanismOf(c, 0);
  if (c.channelsLast) twin.toMemoryFormat('channelsLast');
  const precision = stepPrecisionOf(c);
  const opt = createOptimizer(c.optimizer ?? 'sgd', twin.trainableParameters(), {
    lr: c.lr,
    momentum: c.momentum,
    weightDecay: c.wd,
  });
  const views = [torch.randn([batch, 3, c.imageSize, c.imageSize]), torch.randn([batch, 3, c.imageSize, c.imageSize])];
  const indices = Int32Array.from({ length: batch }, (_, i) => i);
  let e2eMs = 0;
  let modelMs = 0;
  let lastOut = 0;
  const twinStep: TrainObserver = {
    step(_ctx, e) {
      const tIn = performance.now();
      torch.tidy(() => {
        const rnd = twin.randomness(stepRng(c.seed + 1, e.epoch, e.batchIndex), batch);
        trainStep(twin, opt, { views, indices }, rnd, undefined, precision).loss.item();
        return undefined;
      });
      const tOut = performance.now();
      // Step `e.step`'s end-to-end time: from the twin's last step to this call (the loop's whole iteration).
      if (e.step > WARMUP) {
        e2eMs += tIn - lastOut;
        modelMs += tOut - tIn;
      }
      lastOut = tOut;
    },
  };
  try {
    await pretrain(c, { quiet: true, memoryCheck: false, observers: [twinStep], command: ['bench/pretrain'] });
  } finally {
    opt.dispose();
    twin.dispose();
    for (const v of views) v.dispose();
  }
  const timed = (steps - WARMUP) * batch * 1000;
  return { e2e: timed / e2eMs, model: timed / modelMs };
}
const repeats = Number(process.env.BENCH_REPEATS ?? 3);
/** min / median / max of a list, rounded. */
const spread = (xs: number[], digits = 3): { min: number; median: number; max: number } => {
  const v = [...xs].sort((x, y) => x - y);
  const mid = v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  return { min: round(v[0]!, digits), median: round(mid, digits), max: round(v[v.length - 1]!, digits) };
};

const out: Record<string, unknown> = {
  bench: 'pretrain',
  data,
  batch,
  steps,
  warmup_steps: WARMUP,
  threads,
  repeats,
  torch: torch.version,
};
for (const width of widths) {
  // Each round: the interleaved pair, our CLI end to end (its throughput and peak RSS), then PyTorch's.
  const runs: {
    ours: number;
    pytorch: number;
    model: number;
    inProcess: number;
    oursRss: number;
    pytorchRss: number;
    oursLoss: number;
    pytorchLoss: number;
  }[] = [];
  for (let rep = 0; rep < repeats; rep++) {
    const il = await interleaved(width, rep);
    const ours = await runMeasured(process.execPath, [
      join(root, 'dist', 'src', 'cli', 'main.js'),
      'pretrain',
      data,
      '--preset',
      'cifar',
      '--width',
      String(width),
      '--batch-size',
      String(batch),
      '--max-steps',
      String(steps),
      '--threads',
      String(threads),
      '--quiet',
      '--out',
      join(tmpdir(), `moco-bench-${process.pid}-${width}-${rep}`),
    ]);
    if (ours.code !== 0) throw new Error(`moco pretrain failed: ${ours.stderr.slice(-2000)}`);
    const o = lastJson<{ imagesPerSec: number; lastLoss: number }>(ours.stdout, 'moco pretrain');
    const theirs = await runMeasured(PYTHON, [
      peer,
      data,
      '--cifar-stem',
      '--width',
      String(width),
      '--batch-size',
      String(batch),
      '--workers',
      '2',
      '--max-steps',
      String(steps),
      '--threads',
      String(threads),
      '--no-mlp',
      '--T',
      '0.1',
      '--K',
      '4096',
      '--m',
      '0.99',
      '--crop-min',
      '0.08',
      '--lr',
      '0.06',
      '--wd',
      '5e-4',
      '--bn-splits',
      '8',
    ]);
    if (theirs.code !== 0) throw new Error(`peer failed: ${theirs.stderr.slice(-2000)}`);
    const p = lastJson<{ images_per_s: number; last_loss: number }>(theirs.stdout, 'peer');
    runs.push({
      ours: o.imagesPerSec,
      pytorch: p.images_per_s,
      model: il.model,
      inProcess: il.e2e,
      oursRss: ours.peakRssMb,
      pytorchRss: theirs.peakRssMb,
      oursLoss: o.lastLoss,
      pytorchLoss: p.last_loss,
    });
    console.error(
      `bench/pretrain: width ${width} run ${rep + 1}/${repeats}: ours ${round(o.imagesPerSec, 1)} img/s, interleaved ${round(il.e2e, 1)} vs model-only ${round(il.model, 1)}, PyTorch ${round(p.images_per_s, 1)}; RSS ${round(ours.peakRssMb, 0)} vs ${round(theirs.peakRssMb, 0)} MB`,
    );
  }
  const e2eOverModel = runs.map((r) => r.inProcess / r.model);
  const vsPytorch = runs.map((r) => r.ours / r.pytorch);
  out[`width${width}`] = {
    ours_images_per_s: spread(
      runs.map((r) => r.ours),
      2,
    ),
    pytorch_images_per_s: spread(
      runs.map((r) => r.pytorch),
      2,
    ),
    ours_model_only_images_per_s: spread(
      runs.map((r) => r.model),
      2,
    ),
    ours_interleaved_end_to_end_images_per_s: spread(
      runs.map((r) => r.inProcess),
      2,
    ),
    ratio_vs_pytorch: spread(vsPytorch),
    end_to_end_over_model_only: spread(e2eOverModel),
    ours_peak_rss_mb: spread(
      runs.map((r) => r.oursRss),
      1,
    ),
    pytorch_peak_rss_mb: spread(
      runs.map((r) => r.pytorchRss),
      1,
    ),
    ours_last_loss: spread(
      runs.map((r) => r.oursLoss),
      4,
    ),
    pytorch_last_loss: spread(
      runs.map((r) => r.pytorchLoss),
      4,
    ),
    per_run: runs.map((r) => ({
      ours: round(r.ours, 2),
      pytorch: round(r.pytorch, 2),
      model_only: round(r.model, 2),
      interleaved_end_to_end: round(r.inProcess, 2),
      ours_rss_mb: round(r.oursRss, 1),
      pytorch_rss_mb: round(r.pytorchRss, 1),
    })),
    // The targets: the data pipeline takes no cycles from the model, less memory than PyTorch and ≥ 1.2× its
    // throughput in every run (docs/benchmarks.md).
    targets: {
      median_e2e_over_model_ge_0_95: spread(e2eOverModel).median >= 0.95,
      min_e2e_over_model_ge_0_9: Math.min(...e2eOverModel) >= 0.9,
      rss_le_pytorch_every_run: runs.every((r) => r.oursRss <= r.pytorchRss),
      e2e_ge_1_2x_pytorch_every_run: vsPytorch.every((x) => x >= 1.2),
    },
  };
}
console.log(JSON.stringify(out));
