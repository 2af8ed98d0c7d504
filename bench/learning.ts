// Learning parity on real images: `moco pretrain` and the plain PyTorch peer (../shared/peer/torch_moco.py) on the
// official CIFAR-10 demo recipe (ResNet-18 CIFAR stem, K 4096, m 0.99, T 0.1, lr 0.06 cosine, wd 5e-4, batch 512,
// SplitBN 8, crop scale 0.08–1), the same data, the same epochs and seeds, one after the other; kNN (k 200, t 0.1)
// of the pooled backbone features of the test split on both sides. One JSON line: each side's accuracies, their
// mean and spread over seeds, the difference, wall times and end-to-end speed.
//
//   npm run bench:learning -- --epochs 1 --width 16 --seeds 2
//
// --method mocov3 runs MoCo v3 instead, ResNet-18 CIFAR stem (preset mocov3-cifar: LARS lr 0.3 wd 1e-6, T 0.2,
// projector 2048→256, 1 warm-up epoch, cosine momentum from 0.99, asymmetric views without blur), against
// ../shared/peer/torch_mocov3.py with the same settings; --method mocov3-vit the small ViT (preset mocov3-vit-cifar:
// ViT-Tiny widths, 6 blocks, patch 4, AdamW lr 1.5e-4 wd 0.1, frozen patch projection). Both report the random
// encoder's kNN too (ours, before the first step): learning is the rise above it.
//
// --augment-stats N compares the augmentation itself, stage by stage (crop+flip, + colour jitter, + grayscale), on N
// training images as moco-ts decoded them: per-channel mean/std of the views, the fractions at 0 and 1, a 16-bin
// histogram, the correlation between an image's two views, and the distributions of the crop area, the crop
// aspect ratio and the jitter factors drawn — ours against torchvision's transforms (bench/py/augment_stats.py).
//
// --replay N adds the diagnostic that separates training from what feeds it: moco-ts trains N steps on its own
// loader and dumps its initial state, every batch of views and every key permutation; bench/py/moco_replay.py
// (a MoCo step as moco/builder.py + torch.optim.SGD) trains from the same state on the same inputs. Equal loss
// curves clear the step, the optimiser and SplitBN; a learning gap then lies in initialisation, views or sampling.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { availableParallelism, tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import * as torch from '../src/torch/index.js';
import { MoCo, recipe } from '../src/moco/index.js';
import { SGD, cosineLr } from '../src/optim/index.js';
import {
  Augmentation,
  Loader,
  Rng,
  openDataset,
  preset,
  sampleCropBox,
  sampleJitter,
  type AugmentSpec,
} from '../src/data/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { PYTHON, lastJson, round, runMeasured, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('learning')) process.exit(0);

const root = resolve(new URL('../..', import.meta.url).pathname);
const { values: a } = parseArgs({
  options: {
    epochs: { type: 'string', default: '1' },
    width: { type: 'string', default: '16' },
    seeds: { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '512' },
    'train-subset': { type: 'string', default: '0' },
    threads: { type: 'string', default: String(availableParallelism()) },
    method: { type: 'string', default: 'moco' },
    data: { type: 'string', default: process.env.BENCH_DATA ?? resolve(root, '..', 'shared', 'datasets', 'cifar10') },
    peer: { type: 'string', default: process.env.BENCH_PEER ?? resolve(root, '..', 'shared', 'peer', 'torch_moco.py') },
    python: { type: 'string', default: PYTHON },
    replay: { type: 'string', default: '0' },
    'augment-stats': { type: 'string', default: '0' },
  },
});

const epochs = intArg('epochs', 1);
const width = intArg('width', 1);
const nSeeds = intArg('seeds', 0);
const batch = intArg('batch-size', 8);
const subset = intArg('train-subset', 0);
const threads = intArg('threads', 1);
const replaySteps = intArg('replay', 0);
const statsImages = intArg('augment-stats', 0);
if (!existsSync(a.data!))
  throw new Error(`bench/learning: --data ${a.data} not found (a CIFAR-10 folder with train/ and test/)`);
const METHODS = { moco: 'cifar', mocov3: 'mocov3-cifar', 'mocov3-vit': 'mocov3-vit-cifar' } as const;
const method = a.method as keyof typeof METHODS;
if (!(method in METHODS))
  throw new Error(`bench/learning: --method ${a.method}: valid: ${Object.keys(METHODS).join(', ')}`);
const presetName = METHODS[method];
const v3 = method !== 'moco';
if (v3 && process.env.BENCH_PEER === undefined && a.peer === resolve(root, '..', 'shared', 'peer', 'torch_moco.py'))
  a.peer = resolve(root, '..', 'shared', 'peer', 'torch_mocov3.py');
if (!existsSync(a.peer!)) throw new Error(`bench/learning: --peer ${a.peer} not found`);
if (v3 && (replaySteps > 0 || statsImages > 0))
  throw new Error('bench/learning: --replay and --augment-stats compare MoCo v2 (--method moco)');
const r = recipe(presetName);

function bytes(t: torch.Tensor): Buffer {
  const d = t.contiguous().data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function intArg(name: keyof typeof a, min: number): number {
  const v = Number(a[name]);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`bench/learning: --${name} ${a[name]} must be an integer ≥ ${min}`);
  return v;
}

interface Run {
  knnTop1: number;
  wallS: number;
  imagesPerSec: number;
  lastLoss: number;
  knnTop1Init?: number;
}

async function ours(seed: number): Promise<Run> {
  const out = mkdtempSync(join(tmpdir(), 'moco-learning-'));
  try {
    const t0 = performance.now();
    const p = await runMeasured(process.execPath, [
      join(root, 'dist', 'src', 'cli', 'main.js'),
      'pretrain',
      a.data!,
      '--preset',
      presetName,
      ...(method === 'mocov3-vit' ? [] : ['--width', String(width)]),
      '--batch-size',
      String(batch),
      '--epochs',
      String(epochs),
      '--knn-every',
      String(epochs),
      '--knn-feature',
      'backbone',
      '--seed',
      String(seed),
      '--threads',
      String(threads),
      '--train-subset',
      String(subset),
      '--quiet',
      '--out',
      out,
    ]);
    const wallS = (performance.now() - t0) / 1000;
    if (p.code !== 0) throw new Error(`moco pretrain failed: ${p.stderr.slice(-2000)}`);
    const s = lastJson<{ knnTop1: number; knnTop1Init?: number; imagesPerSec: number; lastLoss: number }>(
      p.stdout,
      'moco pretrain',
    );
    return {
      knnTop1: s.knnTop1,
      wallS,
      imagesPerSec: s.imagesPerSec,
      lastLoss: s.lastLoss,
      ...(s.knnTop1Init !== undefined ? { knnTop1Init: s.knnTop1Init } : {}),
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** torch_mocov3.py's flags for the recipe `r` (the preset's, as ours runs it). */
function v3PeerFlags(): string[] {
  const arch =
    method === 'mocov3-vit'
      ? [
          '--arch',
          r.arch,
          '--vit-depth',
          String(r.vitDepth),
          '--patch-size',
          String(r.patchSize),
          ...(r.stopGradConv1 ? ['--stop-grad-conv1'] : []),
        ]
      : ['--arch', r.arch, '--cifar-stem', '--width', String(width)];
  return [
    ...arch,
    '--image-size',
    String(r.imageSize),
    '--optimizer',
    r.optimizer!,
    '--lr',
    String(r.lr),
    '--wd',
    String(r.wd),
    '--T',
    String(r.T),
    '--dim',
    String(r.dim),
    '--mlp-dim',
    String(r.mlpDim),
    '--moco-m',
    String(r.m),
    ...(r.mocoMCos ? ['--moco-m-cos'] : []),
    '--warmup-epochs',
    String(r.warmupEpochs),
    '--crop-min',
    String(r.cropMin > 0 ? r.cropMin : 0.08),
    '--no-blur',
  ];
}

async function peer(seed: number): Promise<Run> {
  const t0 = performance.now();
  const p = await runMeasured(
    a.python!,
    v3
      ? [
          a.peer!,
          a.data!,
          ...v3PeerFlags(),
          '--batch-size',
          String(batch),
          '--epochs',
          String(epochs),
          '--knn',
          '--seed',
          String(seed),
          '--threads',
          String(threads),
          '--workers',
          '2',
          ...(subset > 0 ? ['--train-subset', String(subset)] : []),
        ]
      : [
          a.peer!,
          a.data!,
          '--cifar-stem',
          '--width',
          String(width),
          '--no-mlp',
          '--T',
          String(r.T),
          '--K',
          String(r.K),
          '--m',
          String(r.m),
          '--crop-min',
          '0.08',
          '--lr',
          String(r.lr),
          '--wd',
          String(r.wd),
          '--batch-size',
          String(batch),
          '--bn-splits',
          String(r.bnSplits),
          '--epochs',
          String(epochs),
          '--knn',
          '--seed',
          String(seed),
          '--threads',
          String(threads),
          '--workers',
          '2',
          ...(subset > 0 ? ['--train-subset', String(subset)] : []),
        ],
  );
  const wallS = (performance.now() - t0) / 1000;
  if (p.code !== 0) throw new Error(`peer failed: ${p.stderr.slice(-2000)}`);
  const s = lastJson<{ knn_top1: number; images_per_s: number; last_loss: number }>(p.stdout, 'peer');
  return { knnTop1: s.knn_top1, wallS, imagesPerSec: s.images_per_s, lastLoss: s.last_loss };
}

function summary(runs: Run[]): Record<string, unknown> {
  const acc = runs.map((x) => x.knnTop1);
  const mean = acc.reduce((s, x) => s + x, 0) / acc.length;
  const std = acc.length > 1 ? Math.sqrt(acc.reduce((s, x) => s + (x - mean) ** 2, 0) / (acc.length - 1)) : 0;
  return {
    knn_top1: acc.map((x) => round(x, 2)),
    mean: round(mean, 2),
    std: round(std, 2),
    ...(runs.every((x) => x.knnTop1Init !== undefined)
      ? { knn_top1_random_encoder: runs.map((x) => round(x.knnTop1Init!, 2)) }
      : {}),
    wall_s: runs.map((x) => round(x.wallS, 1)),
    images_per_s: runs.map((x) => round(x.imagesPerSec, 1)),
    last_loss: runs.map((x) => round(x.lastLoss, 4)),
  };
}

/** moco-ts trains `steps` steps and dumps what it saw; PyTorch replays them; both loss curves. */
async function replay(steps: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'moco-replay-'));
  try {
    torch.setNumThreads(threads);
    torch.manualSeed(0);
    const train = openDataset(a.data!, { split: 'train', seed: 0 });
    const loader = new Loader(train, {
      batchSize: batch,
      shuffle: true,
      dropLast: true,
      seed: 0,
      augment: new Augmentation('cifar', { size: r.imageSize, threads: null }),
      twoCrops: true,
    });
    await loader.prepare();
    const moco = new MoCo({
      arch: r.arch,
      cifarStem: true,
      width,
      dim: r.dim,
      K: r.K,
      m: r.m,
      T: r.T,
      head: r.head,
      bnSplits: r.bnSplits,
    });
    saveSafetensors(join(dir, 'init.safetensors'), moco.stateDict());
    const opt = new SGD(moco.trainableParameters(), { lr: r.lr, momentum: r.momentum, weightDecay: r.wd });
    const spe = loader.batchesPerEpoch;
    const replayEpochs = Math.ceil(steps / spe);
    const losses: number[] = [];
    for (let e = 0; losses.length < steps; e++) {
      opt.setLr(cosineLr(r.lr, e, replayEpochs));
      for await (const b of loader.epoch(e)) {
        const [xq, xk] = b.views as [torch.Tensor, torch.Tensor];
        const perm = torch.tensor(new Rng(0, 'key-shuffle', e, b.index).permutation(batch)).long();
        writeFileSync(join(dir, `${losses.length}.bin`), Buffer.concat([xq, xk, perm].map((t) => bytes(t))));
        losses.push(
          torch.tidy(() => {
            const o = moco.forwardPair(xq, xk, { keyPerm: perm });
            opt.zeroGrad();
            o.loss.backward();
            opt.step();
            return o.loss.item();
          }),
        );
        perm.dispose();
        b.dispose();
        if (losses.length >= steps) break;
      }
    }
    await loader.close();
    moco.dispose();
    opt.dispose();
    train.dispose();
    const py = execFileSync(
      a.python!,
      [
        join(root, 'bench', 'py', 'moco_replay.py'),
        dir,
        String(steps),
        String(spe),
        String(replayEpochs),
        String(width),
        String(r.K),
        String(r.m),
        String(r.T),
        String(r.lr),
        String(r.wd),
        String(r.bnSplits),
        String(threads),
        String(batch),
        String(r.imageSize),
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    const theirs = lastJson<{ losses: number[] }>(py, 'moco_replay.py').losses;
    const window = (xs: number[], from: number, to: number): number =>
      round(xs.slice(from, to).reduce((s, x) => s + x, 0) / Math.max(1, to - from), 4);
    const w = Math.min(10, steps);
    return {
      steps,
      first_step_abs_diff: Math.abs(losses[0]! - theirs[0]!),
      max_abs_diff_first_5: round(Math.max(...losses.slice(0, 5).map((x, i) => Math.abs(x - theirs[i]!))), 6),
      ours_mean_loss_last_10: window(losses, steps - w, steps),
      pytorch_mean_loss_last_10: window(theirs, steps - w, steps),
      ours_losses: losses.map((x) => round(x, 4)),
      pytorch_losses: theirs.map((x) => round(x, 4)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pixelStats(a: Float32Array, b: Float32Array, n: number, s: number): Record<string, unknown> {
  const plane = s * s;
  const per = 3 * plane;
  const sum = [0, 0, 0],
    sq = [0, 0, 0];
  let at0 = 0,
    at1 = 0;
  const hist = new Array<number>(16).fill(0);
  for (const x of [a, b]) {
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const c = Math.floor(i / plane) % 3;
      sum[c] += v;
      sq[c] += v * v;
      if (v <= 0.5 / 255) at0++;
      if (v >= 1 - 0.5 / 255) at1++;
      hist[Math.min(15, Math.max(0, Math.floor(v * 16)))]++;
    }
  }
  const count = 2 * n * plane;
  let corr = 0;
  for (let i = 0; i < n; i++) {
    let ma = 0,
      mb = 0;
    for (let j = 0; j < per; j++) {
      ma += a[i * per + j]!;
      mb += b[i * per + j]!;
    }
    ma /= per;
    mb /= per;
    let ab = 0,
      aa = 0,
      bb = 0;
    for (let j = 0; j < per; j++) {
      const da = a[i * per + j]! - ma,
        db = b[i * per + j]! - mb;
      ab += da * db;
      aa += da * da;
      bb += db * db;
    }
    corr += ab / Math.max(1e-12, Math.sqrt(aa * bb));
  }
  const total = 2 * n * per;
  return {
    mean: sum.map((x) => round(x / count, 4)),
    std: sum.map((x, c) => round(Math.sqrt(Math.max(0, (sq[c]! - (x * x) / count) / (count - 1))), 4)),
    at_0: round(at0 / total, 4),
    at_1: round(at1 / total, 4),
    hist16: hist.map((h) => round(h / total, 4)),
    view_corr: round(corr / n, 4),
  };
}

function dist(v: number[]): Record<string, number> {
  const s = [...v].sort((x, y) => x - y);
  const mean = v.reduce((a2, x) => a2 + x, 0) / v.length;
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return {
    mean: round(mean, 4),
    std: round(Math.sqrt(v.reduce((a2, x) => a2 + (x - mean) ** 2, 0) / v.length), 4),
    q10: round(q(0.1), 4),
    q50: round(q(0.5), 4),
    q90: round(q(0.9), 4),
  };
}

/** Our augmentation stage by stage vs torchvision's on the same decoded images; parameter distributions. */
async function augmentStats(n: number, draws = 20000): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'moco-augstats-'));
  try {
    const ds = openDataset(a.data!, { split: 'train', seed: 0 });
    const src = await ds.prepare();
    if (src.kind !== 'decoded')
      throw new Error('--augment-stats: the training images must be decoded once (CIFAR-sized)');
    const images = torch.keep(src.images.take(new Rng(0, 'augment-stats').permutation(ds.length).slice(0, n)));
    writeFileSync(join(dir, 'images.u8'), bytes(images));
    const base = preset('cifar', { mean: [0, 0, 0], std: [1, 1, 1] });
    const stages: Record<string, AugmentSpec> = {
      crop: { ...base, jitter: null, grayscale: 0, order: [] },
      'crop+jitter': { ...base, grayscale: 0, order: ['jitter'] },
      full: base,
    };
    const ours: Record<string, unknown> = {};
    const idx = Int32Array.from({ length: n }, (_, i) => i);
    for (const [name, spec] of Object.entries(stages)) {
      const [va, vb] = new Augmentation(spec, { threads: null }).fromMemory(
        images,
        idx,
        new Rng(0, 'augment-stats', name),
        2,
      ) as [torch.Tensor, torch.Tensor];
      ours[name] = pixelStats(va.data() as Float32Array, vb.data() as Float32Array, n, base.size);
      va.dispose();
      vb.dispose();
    }
    images.dispose();
    ds.dispose();
    const rng = new Rng(0, 'augment-stats', 'params');
    const areas: number[] = [],
      aspects: number[] = [];
    const fac: Record<'brightness' | 'contrast' | 'saturation' | 'hue', number[]> = {
      brightness: [],
      contrast: [],
      saturation: [],
      hue: [],
    };
    for (let i = 0; i < draws; i++) {
      const box = sampleCropBox(rng, 32, 32, base.crop!.scale, base.crop!.ratio);
      areas.push((box.width * box.height) / 1024);
      aspects.push(Math.log(box.width / box.height));
      const j = sampleJitter(rng, base.jitter!);
      for (const k of Object.keys(fac) as (keyof typeof fac)[]) fac[k].push(j[k]);
    }
    const py = execFileSync(
      a.python!,
      [
        join(root, 'bench', 'py', 'augment_stats.py'),
        join(dir, 'images.u8'),
        String(n),
        String(base.size),
        String(draws),
        '0',
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    const tv = lastJson<Record<string, unknown>>(py, 'augment_stats.py');
    return {
      images: n,
      ours: {
        stages: ours,
        crop_area: dist(areas),
        crop_log_aspect: dist(aspects),
        jitter: Object.fromEntries(Object.entries(fac).map(([k, v]) => [k, dist(v)])),
      },
      torchvision: tv,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const seeds = Array.from({ length: nSeeds }, (_, i) => i);
const oursRuns: Run[] = [];
const peerRuns: Run[] = [];
// Progress on stderr: a run at the full recipe takes minutes; stdout stays one JSON line.
const note = (side: string, seed: number, x: Run): void => {
  process.stderr.write(
    `bench/learning: ${side} seed ${seed}: kNN ${x.knnTop1.toFixed(2)}%, ${x.wallS.toFixed(0)} s, ${x.imagesPerSec.toFixed(1)} img/s\n`,
  );
};
for (const seed of seeds) {
  oursRuns.push(await ours(seed));
  note('moco-ts', seed, oursRuns[oursRuns.length - 1]!);
  peerRuns.push(await peer(seed));
  note('pytorch', seed, peerRuns[peerRuns.length - 1]!);
}
const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
const result: Record<string, unknown> = {
  bench: 'learning',
  method,
  preset: presetName,
  data: a.data,
  epochs,
  width,
  batch,
  train_subset: subset,
  seeds,
  threads,
  torch: torch.version,
  recipe: v3
    ? {
        arch: r.arch,
        optimizer: r.optimizer,
        lr: r.lr,
        wd: r.wd,
        T: r.T,
        dim: r.dim,
        mlp_dim: r.mlpDim,
        m: r.m,
        m_cos: r.mocoMCos,
        warmup_epochs: r.warmupEpochs,
        augment: r.augment,
      }
    : { K: r.K, m: r.m, T: r.T, lr: r.lr, wd: r.wd, bn_splits: r.bnSplits, crop_min: 0.08, head: r.head },
};
if (seeds.length) {
  const o = summary(oursRuns);
  const p = summary(peerRuns);
  Object.assign(result, {
    ours: o,
    pytorch: p,
    diff_mean: round((o.mean as number) - (p.mean as number), 2),
    // Standard error of the difference of the two means.
    diff_se: round(Math.sqrt(((o.std as number) ** 2 + (p.std as number) ** 2) / seeds.length), 2),
    within_1_point: (o.mean as number) >= (p.mean as number) - 1,
    // Learning, not just equality: both sides end ≥ 5 points above the random encoder (ours before its first step).
    ...(oursRuns.every((x) => x.knnTop1Init !== undefined)
      ? {
          above_random_plus_5:
            Math.min(
              ...oursRuns.map((x) => x.knnTop1 - x.knnTop1Init!),
              ...peerRuns.map((x, i) => x.knnTop1 - oursRuns[i]!.knnTop1Init!),
            ) >= 5,
        }
      : {}),
    speed_ratio_vs_pytorch: round(med(oursRuns.map((x) => x.imagesPerSec)) / med(peerRuns.map((x) => x.imagesPerSec))),
    wall_ratio_vs_pytorch: round(med(oursRuns.map((x) => x.wallS)) / med(peerRuns.map((x) => x.wallS))),
  });
}
if (statsImages > 0) result.augment_stats = await augmentStats(statsImages);
if (replaySteps > 0) result.replay = await replay(replaySteps);
console.log(JSON.stringify(result));
