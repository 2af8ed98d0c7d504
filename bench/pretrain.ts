// End-to-end pre-training throughput on real CIFAR-10 JPEGs: `moco pretrain` vs the plain PyTorch peer
// (../shared/peer/torch_moco.py: torchvision transforms, DataLoader with 2 workers), same recipe, same machine,
// one after the other; plus our model-only rate (the same MoCo steps on batches already in memory), measured
// just before and just after our end-to-end run and averaged, so that a change of machine load between the two
// measurements does not masquerade as data-pipeline cost. BENCH_REPEATS (default 3) alternating rounds.
// One JSON line: per width, min/median/max over the rounds of images/s of all three, the ratios and the peak RSS
// of both process trees, each round's figures, and whether the targets held.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { availableParallelism, tmpdir } from 'node:os';
import * as torch from '../src/torch/index.js';
import { MoCo, recipe } from '../src/moco/index.js';
import { SGD } from '../src/optim/index.js';
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
if (!existsSync(data)) throw new Error(`bench/pretrain: CIFAR-10 folder ${data} not found (set BENCH_DATA)`);

const r = recipe('cifar');

/** Our MoCo step on fixed in-memory batches: the rate the data pipeline has to keep up with. */
function modelOnly(width: number): number {
  torch.setNumThreads(threads);
  torch.manualSeed(0);
  const moco = new MoCo({ arch: r.arch, cifarStem: true, width, dim: r.dim, K: r.K, m: r.m, T: r.T, head: r.head, bnSplits: r.bnSplits });
  const opt = new SGD(moco.trainableParameters(), { lr: r.lr, momentum: r.momentum, weightDecay: r.wd });
  const xq = torch.randn([batch, 3, 32, 32]);
  const xk = torch.randn([batch, 3, 32, 32]);
  const step = (): void => torch.tidy(() => {
    const out = moco.forwardPair(xq, xk);
    opt.zeroGrad();
    out.loss.backward();
    opt.step();
    out.loss.item();
    return undefined;
  });
  step();
  step();
  const t0 = performance.now();
  for (let i = 2; i < steps; i++) step();
  const ips = ((steps - 2) * batch * 1000) / (performance.now() - t0);
  moco.dispose();
  opt.dispose();
  return ips;
}

const repeats = Number(process.env.BENCH_REPEATS ?? 3);
/** min / median / max of a list, rounded. */
const spread = (xs: number[], digits = 3): { min: number; median: number; max: number } => {
  const v = [...xs].sort((x, y) => x - y);
  const mid = v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  return { min: round(v[0]!, digits), median: round(mid, digits), max: round(v[v.length - 1]!, digits) };
};

const out: Record<string, unknown> = { bench: 'pretrain', data, batch, steps, warmup_steps: 2, threads, repeats, torch: torch.version };
for (const width of widths) {
  // Runs alternate (model-only, ours end to end, model-only, PyTorch, …) so that a change of machine load
  // touches every figure alike; each run's ratios are taken within that run.
  const runs: { ours: number; pytorch: number; model: number; oursRss: number; pytorchRss: number; oursLoss: number; pytorchLoss: number }[] = [];
  for (let rep = 0; rep < repeats; rep++) {
    const m0 = modelOnly(width);
    const ours = await runMeasured(process.execPath, [
      join(root, 'dist', 'src', 'cli', 'main.js'), 'pretrain', data, '--preset', 'cifar', '--width', String(width),
      '--batch-size', String(batch), '--max-steps', String(steps), '--threads', String(threads), '--quiet',
      '--out', join(tmpdir(), `moco-bench-${process.pid}-${width}-${rep}`),
    ]);
    if (ours.code !== 0) throw new Error(`moco pretrain failed: ${ours.stderr.slice(-2000)}`);
    const o = lastJson<{ imagesPerSec: number; lastLoss: number }>(ours.stdout, 'moco pretrain');
    const m = (m0 + modelOnly(width)) / 2;
    const theirs = await runMeasured(PYTHON, [
      peer, data, '--cifar-stem', '--width', String(width), '--batch-size', String(batch), '--workers', '2', '--max-steps', String(steps),
      '--threads', String(threads), '--no-mlp', '--T', '0.1', '--K', '4096', '--m', '0.99', '--crop-min', '0.08', '--lr', '0.06',
      '--wd', '5e-4', '--bn-splits', '8',
    ]);
    if (theirs.code !== 0) throw new Error(`peer failed: ${theirs.stderr.slice(-2000)}`);
    const p = lastJson<{ images_per_s: number; last_loss: number }>(theirs.stdout, 'peer');
    runs.push({ ours: o.imagesPerSec, pytorch: p.images_per_s, model: m, oursRss: ours.peakRssMb, pytorchRss: theirs.peakRssMb, oursLoss: o.lastLoss, pytorchLoss: p.last_loss });
    console.error(`bench/pretrain: width ${width} run ${rep + 1}/${repeats}: ours ${round(o.imagesPerSec, 1)} img/s, model-only ${round(m, 1)}, PyTorch ${round(p.images_per_s, 1)}; RSS ${round(ours.peakRssMb, 0)} vs ${round(theirs.peakRssMb, 0)} MB`);
  }
  const e2eOverModel = runs.map((r) => r.ours / r.model);
  const vsPytorch = runs.map((r) => r.ours / r.pytorch);
  out[`width${width}`] = {
    ours_images_per_s: spread(runs.map((r) => r.ours), 2),
    pytorch_images_per_s: spread(runs.map((r) => r.pytorch), 2),
    ours_model_only_images_per_s: spread(runs.map((r) => r.model), 2),
    ratio_vs_pytorch: spread(vsPytorch),
    end_to_end_over_model_only: spread(e2eOverModel),
    ours_peak_rss_mb: spread(runs.map((r) => r.oursRss), 1),
    pytorch_peak_rss_mb: spread(runs.map((r) => r.pytorchRss), 1),
    ours_last_loss: spread(runs.map((r) => r.oursLoss), 4),
    pytorch_last_loss: spread(runs.map((r) => r.pytorchLoss), 4),
    per_run: runs.map((r) => ({ ours: round(r.ours, 2), pytorch: round(r.pytorch, 2), model_only: round(r.model, 2), ours_rss_mb: round(r.oursRss, 1), pytorch_rss_mb: round(r.pytorchRss, 1) })),
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
