// The MoCo pre-training loop: data → two views → MoCo step → SGD → metrics, checkpoints, kNN monitor.
// Resumable step for step: everything random in a step is keyed by (seed, epoch, batch) or restored from the
// checkpoint, so an interrupted and resumed run computes the same losses as an uninterrupted one.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, manualSeed, setNumThreads, tensor, tidy } from '../torch/index.js';
import { Augmentation, Loader, Rng, openDataset, renderAugmentPreview, subset, type ImageDataset, type PresetName } from '../data/index.js';
import { MoCo, instanceAccuracy } from '../moco/index.js';
import { SGD, cosineLr, stepLr } from '../optim/index.js';
import { extractFeatures, knnClassify } from '../eval/index.js';
import { FileWriteError, writeTextAtomic } from '../io/atomic.js';
import type { DistributedTraining } from '../dist/index.js';
import type { PretrainConfig } from './config.js';
import type { StepMetrics } from './metrics.js';
import { restoreCheckpoint, saveCheckpoint, type LoadedCheckpoint, type RunState } from './checkpoint.js';
import { RunLog, tensorHistogram } from './run-log.js';
import { renderNeighbourGrid } from '../views/neighbour-grid.js';
import { writeReport } from '../views/report.js';
import { Progress } from './progress.js';

export interface PretrainOptions {
  /** A checkpoint to continue from (see readCheckpoint). */
  resume?: LoadedCheckpoint;
  /** No progress output (tests, services). */
  quiet?: boolean;
  /** Only the main process writes files and progress (multi-process runs). Default true. */
  isMain?: boolean;
  /** The command line recorded in run.json; default process.argv after node. */
  command?: string[];
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
  return (await knnMonitorRun(moco, bank, queries, c)).top1;
}

/** A kNN monitor evaluation with examples to look at. */
export interface KnnMonitorResult {
  /** Percent. */
  top1: number;
  /** Indices into the queries of the examples (seeded, the same at every evaluation of a run). */
  queryIdx: number[];
  /** The `neighbours` most similar bank indices of each example query, most similar first. */
  neighbours: number[][];
}

/** {@link knnMonitor}, also returning the nearest bank images of `examples` (default 8) fixed queries, 5 each. */
export async function knnMonitorRun(moco: MoCo, bank: ImageDataset, queries: ImageDataset, c: PretrainConfig, examples = 8): Promise<KnnMonitorResult> {
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
      const top1 = knnClassify(b.features, b.labels, q.features, q.labels, { k: c.knnK, t: c.knnT }).top1;
      const queryIdx = new Rng(c.seed, 'knn-examples').permutation(queries.length).slice(0, Math.min(examples, queries.length));
      const nn = Math.min(5, bank.length);
      const neighbours = tidy(() => {
        const sel = q.features.indexSelect(0, tensor(Int32Array.from(queryIdx)).long());
        const flat = sel.mm(b.features.t()).topk(nn, 1).indices.contiguous().toArray();
        return Array.from(queryIdx, (_, r) => flat.slice(r * nn, (r + 1) * nn));
      });
      return { top1, queryIdx: Array.from(queryIdx), neighbours };
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

  const bpe = loader.batchesPerEpoch;
  const totalSteps = c.maxSteps > 0 ? Math.min(c.maxSteps, c.epochs * bpe) : c.epochs * bpe;
  const log = isMain ? new RunLog(c.out, { fromStep: state.step, device: c.device, stepsPerEpoch: bpe, totalSteps, command: o.command }) : null;
  const warn = (what: string, e: unknown): void => {
    if (!quiet) process.stderr.write(`warning: ${what}: ${(e as Error).message}\n`);
  };
  if (log && state.step === 0) {
    log.text('config', `\`\`\`json\n${JSON.stringify(c, null, 2)}\n\`\`\``, 0);
    // What the network is shown, at the start; a preview that cannot be rendered never stops training.
    try {
      const file = join(c.out, 'augment-preview.png');
      const p = await renderAugmentPreview(c.data, { preset: c.augment as PresetName, out: file, images: 4, views: 2, size: c.imageSize, seed: c.seed });
      log.image('augment/preview', 'augment-preview.png', readFileSync(file), p.width, p.height, 0);
    } catch (e) { warn('augmentation preview', e); }
  }
  // Events and run.json that cannot be written (a full disk) are a warning: the checkpoints are what must not fail.
  const flushLog = (): void => {
    try {
      log?.flush();
    } catch (e) {
      if (!(e instanceof FileWriteError)) throw e;
      warn('TensorBoard events', e);
    }
  };
  // Logs a kNN evaluation: the row, and its neighbour grid as an image.
  const knnLog = async (r: KnnMonitorResult, row: StepMetrics): Promise<void> => {
    if (!log || !knnData) return;
    log.row(row);
    try {
      const g = await renderNeighbourGrid(knnData.queries, knnData.bank, r.queryIdx, r.neighbours);
      log.image('eval/knn_neighbours', 'knn-neighbours.png', g.png, g.width, g.height, row.step);
    } catch (e) { warn('nearest-neighbour grid', e); }
  };
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
    const r = await knnMonitorRun(moco, knnData.bank, knnData.queries, c);
    knnTop1Init = r.top1;
    progress.log(`before training: kNN top-1 ${knnTop1Init.toFixed(2)}% (random encoder)`);
    await knnLog(r, { epoch: 0, step: 0, loss: NaN, lr: 0, imagesPerSec: 0, elapsed: 0, knnTop1: knnTop1Init });
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
  let outcome: { state: 'finished' | 'interrupted' | 'diverged'; reason?: string } = { state: 'finished' };

  try {
    for (let epoch = state.epoch; epoch < c.epochs && !done; epoch++) {
      const lr = epochLr(c, epoch);
      opt.setLr(lr);
      const startBatch = epoch === state.epoch ? state.batch : 0;
      let waitFrom = performance.now();
      for await (const batch of loader.epoch(epoch, { startBatch })) {
        const stepFrom = performance.now();
        const dataMs = stepFrom - waitFrom;
        const [xq, xk] = batch.views as [Tensor, Tensor];
        const n = xq.shape[0]!;
        // Histograms of the logits every --print-freq steps and at the last step of an epoch or of the run.
        const stepNo = state.step + 1;
        const wantHist = log !== null && (stepNo % c.printFreq === 0 || batch.index + 1 === bpe || stepNo === totalSteps || stepNo === 1);
        let watch: { acc1: number; acc5: number; embedStd: number } | null = null;
        const loss = tidy(() => {
          const keyPerm = permutation(c.seed, 'key-shuffle', epoch, batch.index, n);
          const keyPerm2 = c.symmetric ? permutation(c.seed, 'key-shuffle-2', epoch, batch.index, n) : undefined;
          const out = moco.forwardPair(xq, xk, { keyPerm, keyPerm2 });
          opt.zeroGrad();
          out.loss.backward();
          dist?.afterBackward(moco.trainableParameters());
          opt.step();
          if (log) {
            const [acc1, acc5] = instanceAccuracy(out.logits, [1, 5]) as [number, number];
            watch = { acc1, acc5, embedStd: out.q.detach().std({ dim: 0 }).mean().item() };
            if (wantHist) {
              // logits are l/T: the similarities themselves are logits·T.
              const l = out.logits.detach().mul(moco.T);
              log.histogram('train/l_pos', tensorHistogram(l.narrow(1, 0, 1)), stepNo);
              log.histogram('train/l_neg', tensorHistogram(l.narrow(1, 1, l.shape[1]! - 1)), stepNo);
            }
          }
          return out.loss.item();
        });
        const stepMs = performance.now() - stepFrom;
        batch.dispose();
        if (!Number.isFinite(loss)) {
          const msg = `loss is ${loss} at step ${state.step + 1} (epoch ${epoch}); stopping. Last good checkpoint: ${lastCheckpoint ?? 'none'}. Try a lower --lr.`;
          outcome = { state: 'diverged', reason: `loss is ${loss} at step ${state.step + 1}` };
          throw new Error(msg);
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
        const w = watch as { acc1: number; acc5: number; embedStd: number } | null;
        log?.row({ epoch, step: state.step, loss, lr, imagesPerSec: ips, elapsed: (now - t0) / 1000, ...(w ?? {}), dataMs, stepMs });
        progress.update(state.step, { epoch, loss, lr, imagesPerSec: ips });
        o.onStep?.({ epoch, step: state.step, loss, lr });
        if (state.step >= totalSteps) { done = true; break; }
        // In-memory batches resolve without a trip through the event loop; give signals a chance to land.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (stopSignal) break;
        if (c.saveEverySteps > 0 && state.step % c.saveEverySteps === 0) { save(); flushLog(); }
        waitFrom = performance.now();
      }
      if (state.batch >= bpe) state = { epoch: epoch + 1, batch: 0, step: state.step };
      if (stopSignal) break;
      save(); // the end of an epoch, or of --max-steps within one
      if (knnData && state.batch === 0 && state.epoch % c.knnEvery === 0) {
        const r = await knnMonitorRun(moco, knnData.bank, knnData.queries, c);
        knnTop1 = r.top1;
        knnStep = state.step;
        progress.log(`epoch ${epoch}: kNN top-1 ${knnTop1.toFixed(2)}%`);
        await knnLog(r, { epoch, step: state.step, loss: lastLoss, lr, imagesPerSec: 0, elapsed: (performance.now() - t0) / 1000, knnTop1 });
      }
      flushLog();
    }
    if (stopSignal) {
      save();
      outcome = { state: 'interrupted', reason: stopSignal };
      progress.log(`${stopSignal}: saved ${lastCheckpoint}; continue with --resume ${c.out}`);
    } else if (knnData && knnStep !== state.step) {
      const r = await knnMonitorRun(moco, knnData.bank, knnData.queries, c);
      knnTop1 = r.top1;
      await knnLog(r, { epoch: state.epoch, step: state.step, loss: lastLoss, lr: epochLr(c, Math.min(state.epoch, c.epochs - 1)), imagesPerSec: 0, elapsed: (performance.now() - t0) / 1000, knnTop1 });
    }
  } catch (e) {
    if (outcome.state === 'finished') outcome = { state: 'interrupted', reason: (e as Error).message };
    throw e;
  } finally {
    try {
      log?.close(outcome.state, outcome.reason);
    } catch (e) { warn('closing the event file', e); }
    // The page to look at, however the run ended.
    if (log) {
      try {
        writeReport([c.out], join(c.out, 'report.html'));
      } catch (e) { warn('report.html', e); }
    }
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

