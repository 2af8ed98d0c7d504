// The MoCo pre-training loop: data → two views → MoCo step → SGD → metrics, checkpoints, kNN monitor.
// Resumable step for step: everything random in a step is keyed by (seed, epoch, batch) or restored from the
// checkpoint, so an interrupted and resumed run computes the same losses as an uninterrupted one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, manualSeed, setNumThreads, tensor, tidy } from '../torch/index.js';
import { Augmentation, Loader, Rng, openDataset, subset, type ImageDataset, type PresetName } from '../data/index.js';
import { MoCo } from '../moco/index.js';
import { SGD, cosineLr, stepLr } from '../optim/index.js';
import { extractFeatures, knnClassify } from '../eval/index.js';
import { FileWriteError, writeTextAtomic } from '../io/atomic.js';
import type { DistributedTraining } from '../dist/index.js';
import type { PretrainConfig } from './config.js';
import { restoreCheckpoint, saveCheckpoint, type LoadedCheckpoint, type RunState } from './checkpoint.js';
import { MetricsWriter } from './metrics.js';
import { Progress } from './progress.js';

export interface PretrainOptions {
  /** A checkpoint to continue from (see readCheckpoint). */
  resume?: LoadedCheckpoint;
  /** No progress output (tests, services). */
  quiet?: boolean;
  /** Only the main process writes files and progress (multi-process runs). Default true. */
  isMain?: boolean;
  /** Called after each step. */
  onStep?: (s: { epoch: number; step: number; loss: number; lr: number }) => void;
  /**
   * This process's part in a multi-process run: each rank loads batchSize / worldSize images a step, gradients
   * are averaged, keys gathered before enqueue, ShuffleBN crosses processes, and only rank 0 writes.
   */
  dist?: DistributedTraining;
}

export interface PretrainSummary {
  epochs: number;
  steps: number;
  /** Training images a second (all processes), after the first steps' warm-up. */
  imagesPerSec: number;
  lastLoss: number;
  /** Percent, when the kNN monitor ran: at the end of the run. */
  knnTop1?: number;
  /** Percent: the kNN monitor on the freshly initialised encoder, before the first step (new runs only). */
  knnTop1Init?: number;
  runDir: string;
  checkpoint: string | null;
  /** Stopped early by SIGINT/SIGTERM (a checkpoint was saved). */
  interrupted?: string;
}

const WARMUP_STEPS = 2;

/** The learning rate of an epoch under the config's schedule (set once per epoch, as main_moco.py). */
export function epochLr(c: PretrainConfig, epoch: number): number {
  return c.cos ? cosineLr(c.lr, epoch, c.epochs) : stepLr(c.lr, epoch, c.schedule);
}

function openTrain(c: PretrainConfig): ImageDataset {
  const ds = openDataset(c.data, { split: 'train', seed: c.seed });
  return c.trainSubset > 0 && c.trainSubset < ds.length ? subset(ds, c.trainSubset, c.seed) : ds;
}

function permutation(seed: number, tag: string, epoch: number, batch: number, n: number): Tensor {
  return tidy(() => tensor(new Rng(seed, tag, epoch, batch).permutation(n)).long());
}

/** The weighted kNN monitor: query-encoder features (head or backbone) of the train set as the bank, the test split as queries. */
export async function knnMonitor(moco: MoCo, bank: ImageDataset, queries: ImageDataset, c: PretrainConfig): Promise<number> {
  const enc = moco.encoderQ;
  const was = enc.training;
  enc.eval();
  try {
    const f = (x: Tensor): Tensor => ((c.knnFeature ?? 'head') === 'head' ? enc.forward(x) : enc.features(x));
    const encode = (x: Tensor): Tensor => (c.device === 'cpu' ? f(x) : f(x.to(c.device)).cpu());
    const opts = { augment: c.evalAugment, augmentOpts: { size: c.imageSize }, batchSize: 512 };
    const b = await extractFeatures(encode, bank, opts);
    const q = await extractFeatures(encode, queries, opts);
    try {
      if (!b.labels || !q.labels) throw new Error('kNN monitor needs labels');
      return knnClassify(b.features, b.labels, q.features, q.labels, { k: c.knnK, t: c.knnT }).top1;
    } finally {
      for (const t of [b.features, b.labels, q.features, q.labels]) t?.dispose();
    }
  } finally {
    enc.train(was);
  }
}

/** Runs (or resumes) MoCo pre-training as configured. */
export async function pretrain(c: PretrainConfig, o: PretrainOptions = {}): Promise<PretrainSummary> {
  const dist = o.dist;
  const isMain = dist ? dist.isMain : (o.isMain ?? true);
  const world = dist?.worldSize ?? 1;
  const rank = dist?.rank ?? 0;
  const quiet = o.quiet || !isMain;
  setNumThreads(c.threads);
  manualSeed(c.seed);

  const train = openTrain(c);
  if (c.batchSize % world || (c.batchSize / world) % c.bnSplits) {
    throw new Error(`invalid --batch-size ${c.batchSize}: each of the ${world} processes takes an equal share that --bn-splits ${c.bnSplits} divides, so it must be a multiple of ${world * c.bnSplits}; pass --batch-size ${Math.max(1, Math.round(c.batchSize / (world * c.bnSplits))) * world * c.bnSplits}, or another --bn-splits or process count`);
  }
  // Images decoded into memory (CIFAR-sized) are augmented on this thread between steps, with the model's thread
  // count: switching libtorch's threads for every batch rebuilds the OpenMP team and oneDNN's caches (measured,
  // ResNet-18 width 32 on CIFAR: 108 → 129 images/s end to end). Image files are decoded and augmented by
  // --workers worker threads: their event loops keep decoding while this thread is inside a training step.
  const loader = new Loader(train, {
    batchSize: c.batchSize / world, shuffle: true, dropLast: true, seed: c.seed,
    augment: new Augmentation(c.augment as PresetName, { size: c.imageSize, threads: null }), twoCrops: true, prefetch: Math.max(2, c.workers),
    fileWorkers: c.workers, device: c.device === 'cpu' ? undefined : c.device, rank, worldSize: world,
  });
  await loader.prepare();
  if (train.length < c.batchSize) {
    throw new Error(`data ${c.data}: ${train.length} images is fewer than --batch-size ${c.batchSize}; lower --batch-size`);
  }
  let knnData: { bank: ImageDataset; queries: ImageDataset } | null = null;
  if (c.knnEvery > 0) {
    let queries: ImageDataset | null = null;
    try { queries = openDataset(c.data, { split: 'test', seed: c.seed }); } catch { queries = null; }
    if (!train.labels || !queries?.labels) {
      if (!quiet) process.stderr.write(`--knn-every ${c.knnEvery}: ${c.data} has no labelled test/val split; the kNN monitor is off\n`);
    } else {
      knnData = { bank: train, queries };
    }
  }

  const moco = new MoCo({
    arch: c.arch, dim: c.dim, K: c.K, m: c.m, T: c.T, head: c.head, cifarStem: c.cifarStem, width: c.width,
    bnSplits: c.bnSplits, symmetric: c.symmetric, shuffle: c.shuffleBn,
  });
  if (c.device !== 'cpu') moco.to(c.device);
  const opt = new SGD(moco.trainableParameters(), { lr: c.lr, momentum: c.momentum, weightDecay: c.wd });
  let state: RunState = { epoch: 0, batch: 0, step: 0 };
  if (o.resume) {
    restoreCheckpoint(o.resume, moco, opt);
    state = { ...o.resume.state };
  }
  if (dist) {
    // Every rank starts from rank 0's weights, queue and counters (also after a resume on another world size).
    await dist.syncState([...moco.stateDict().values()]);
    moco.dist = dist.hooks(c.shuffleBn);
  }

  if (isMain) {
    mkdirSync(c.out, { recursive: true });
    writeTextAtomic(join(c.out, 'config.json'), `${JSON.stringify(c, null, 2)}\n`);
  }
  const metrics = isMain ? new MetricsWriter(c.out, state.step) : null;
  const bpe = loader.batchesPerEpoch;
  const totalSteps = c.maxSteps > 0 ? Math.min(c.maxSteps, c.epochs * bpe) : c.epochs * bpe;
  const progress = new Progress(totalSteps, state.step, c.printFreq, !quiet);

  let stopSignal: string | null = null;
  const onSignal = (sig: string) => (): void => { stopSignal = sig; };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);

  let lastCheckpoint: string | null = o.resume?.file ?? null;
  const save = (): void => {
    if (!isMain) return;
    try {
      lastCheckpoint = saveCheckpoint(c.out, moco, opt, state, c, c.keepCheckpoints);
    } catch (e) {
      if (!(e instanceof FileWriteError)) throw e;
      const last = lastCheckpoint ? `the last good checkpoint ${lastCheckpoint} is intact` : 'no checkpoint was saved before';
      throw new Error(`${e.message} (run directory ${c.out}, step ${state.step}); ${last}. Free space, then continue with: moco pretrain --resume ${c.out}`, { cause: e });
    }
  };
  let lastLoss = NaN;
  let knnTop1: number | undefined;
  // The random encoder's accuracy, so that a run shows what it learned.
  let knnTop1Init: number | undefined;
  if (knnData && state.step === 0) {
    knnTop1Init = await knnMonitor(moco, knnData.bank, knnData.queries, c);
    progress.log(`before training: kNN top-1 ${knnTop1Init.toFixed(2)}% (random encoder)`);
    metrics?.write({ epoch: 0, step: 0, loss: NaN, lr: 0, imagesPerSec: 0, elapsed: 0, knnTop1: knnTop1Init });
  }
  let knnStep = -1;
  // Throughput counts wall time from the end of the warm-up steps, data loading included.
  let timedImages = 0;
  let timedFrom = 0;
  let timedTo = 0;
  const t0 = performance.now();
  let windowStart = performance.now();
  let windowImages = 0;
  let stepsThisRun = 0;
  let done = state.step >= totalSteps;

  try {
    for (let epoch = state.epoch; epoch < c.epochs && !done; epoch++) {
      const lr = epochLr(c, epoch);
      opt.setLr(lr);
      const startBatch = epoch === state.epoch ? state.batch : 0;
      for await (const batch of loader.epoch(epoch, { startBatch })) {
        const [xq, xk] = batch.views as [Tensor, Tensor];
        const n = xq.shape[0]!;
        const loss = tidy(() => {
          const keyPerm = permutation(c.seed, 'key-shuffle', epoch, batch.index, n);
          const keyPerm2 = c.symmetric ? permutation(c.seed, 'key-shuffle-2', epoch, batch.index, n) : undefined;
          const out = moco.forwardPair(xq, xk, { keyPerm, keyPerm2 });
          opt.zeroGrad();
          out.loss.backward();
          dist?.afterBackward(moco.trainableParameters());
          opt.step();
          return out.loss.item();
        });
        batch.dispose();
        if (!Number.isFinite(loss)) {
          throw new Error(`loss is ${loss} at step ${state.step + 1} (epoch ${epoch}); stopping. Last good checkpoint: ${lastCheckpoint ?? 'none'}. Try a lower --lr.`);
        }
        lastLoss = loss;
        state = { epoch, batch: batch.index + 1, step: state.step + 1 };
        stepsThisRun++;
        const images = n * world;
        const now = performance.now();
        if (stepsThisRun === WARMUP_STEPS) timedFrom = now;
        if (stepsThisRun > WARMUP_STEPS) { timedImages += images; timedTo = now; }
        windowImages += images;
        const ips = (1000 * windowImages) / Math.max(1, now - windowStart);
        if (state.step % c.printFreq === 0) { windowStart = now; windowImages = 0; }
        metrics?.write({ epoch, step: state.step, loss, lr, imagesPerSec: ips, elapsed: (now - t0) / 1000 });
        progress.update(state.step, { epoch, loss, lr, imagesPerSec: ips });
        o.onStep?.({ epoch, step: state.step, loss, lr });
        if (state.step >= totalSteps) { done = true; break; }
        // In-memory batches resolve without a trip through the event loop; give signals a chance to land.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (stopSignal) break;
        if (c.saveEverySteps > 0 && state.step % c.saveEverySteps === 0) save();
      }
      if (state.batch >= bpe) state = { epoch: epoch + 1, batch: 0, step: state.step };
      if (stopSignal) break;
      save(); // the end of an epoch, or of --max-steps within one
      if (knnData && state.batch === 0 && state.epoch % c.knnEvery === 0) {
        knnTop1 = await knnMonitor(moco, knnData.bank, knnData.queries, c);
        knnStep = state.step;
        progress.log(`epoch ${epoch}: kNN top-1 ${knnTop1.toFixed(2)}%`);
        metrics?.write({ epoch, step: state.step, loss: lastLoss, lr, imagesPerSec: 0, elapsed: (performance.now() - t0) / 1000, knnTop1 });
      }
    }
    if (stopSignal) {
      save();
      progress.log(`${stopSignal}: saved ${lastCheckpoint}; continue with --resume ${c.out}`);
    } else if (knnData && knnStep !== state.step) {
      knnTop1 = await knnMonitor(moco, knnData.bank, knnData.queries, c);
    }
  } finally {
    progress.stop();
    await loader.close();
    process.off('SIGINT', handlers.SIGINT);
    process.off('SIGTERM', handlers.SIGTERM);
    opt.dispose();
    moco.dispose();
    train.dispose();
    knnData?.queries.dispose();
  }
  return {
    epochs: state.epoch + (state.batch > 0 ? state.batch / bpe : 0),
    steps: state.step,
    imagesPerSec: timedTo > timedFrom ? (1000 * timedImages) / (timedTo - timedFrom) : 0,
    lastLoss,
    ...(knnTop1 !== undefined ? { knnTop1 } : {}),
    ...(knnTop1Init !== undefined ? { knnTop1Init } : {}),
    runDir: c.out,
    checkpoint: lastCheckpoint,
    ...(stopSignal ? { interrupted: stopSignal } : {}),
  };
}

