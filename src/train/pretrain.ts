// The pre-training loop: data → views → a mechanism's step (MoCo, end-to-end, memory bank, MoCo v3) → the
// optimizer (SGD; LARS or AdamW for MoCo v3, whose lr and momentum are set every iteration), and a list
// of observers (metrics and events, progress, checkpoints, kNN monitor, signals) called at fixed points.
// Resumable step for step: everything random in a step is keyed by (seed, epoch, batch) or restored from the
// checkpoint, so an interrupted and resumed run computes the same losses as an uninterrupted one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cpuBf16Features, manualSeed, setNumThreads, type Tensor } from '../torch/index.js';
import {
  Augmentation,
  Loader,
  numClassesOf,
  openDataset,
  subset,
  type Batch,
  type ImageDataset,
  type PresetName,
} from '../data/index.js';
import { createMechanism, type Mechanism, type MechanismRun } from '../moco/index.js';
import {
  cosineLr,
  cosineMomentum,
  createOptimizer,
  linearScaledLr,
  stepLr,
  warmupCosineLr,
  type Optimizer,
} from '../optim/index.js';
import { writeTextAtomic } from '../io/atomic.js';
import type { DistributedTraining } from '../dist/index.js';
import { keysPerStep, type PretrainConfig } from './config.js';
import {
  restoreCheckpoint,
  resumeCommand,
  type CheckpointExtra,
  type LoadedCheckpoint,
  type RunState,
} from './checkpoint.js';
import { Loop, type LoopResult, type LoopStep } from '../loop/index.js';
import { stderrWarner, type PretrainLoop, type StepEvent, type TrainObserver } from './observer.js';
import {
  CheckpointObserver,
  KnnObserver,
  OnlineProbeObserver,
  ProgressObserver,
  RunLogObserver,
  SignalObserver,
  type KnnObserverOptions,
  type NeighbourGridRenderer,
} from './observers/index.js';
import { stepRng } from './step-rng.js';
import { readMetrics, type StepMetrics } from './metrics.js';
import { trainStep, type StepPrecision } from './train-step.js';
import { availableMemory, checkMemory, estimatePeakMemory } from './memory.js';
import { disposeInitSource, initEncoders, pinnedInitFrom, readInitSource } from './init-from.js';

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
   * More observers of the loop, called after the built-in ones (main process and others alike): e.g. views'
   * ReportObserver, which writes the run's report.html however the run ends.
   */
  observers?: TrainObserver[];
  /** Draws each kNN evaluation's nearest-neighbour grid into the run log (views' renderNeighbourGrid); none by default. */
  neighbourGrid?: NeighbourGridRenderer;
  /**
   * This process's part in a multi-process run: each rank loads batchSize / worldSize images a step, gradients
   * are averaged, keys gathered before enqueue, ShuffleBN crosses processes, and only rank 0 writes.
   */
  dist?: DistributedTraining;
  /**
   * Refuse, before any step, a run whose estimated peak memory exceeds the memory available (see
   * estimatePeakMemory, availableMemory). Default true; false is `--no-memory-check`.
   */
  memoryCheck?: boolean;
  /**
   * SIGINT and SIGTERM stop the run after the current step, with a checkpoint (PretrainSummary.interrupted).
   * Default false: a library caller keeps its process's own signal handling; the CLI turns it on.
   */
  handleSignals?: boolean;
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
  /** Percent, with --online-probe: the probe's top-1 on the training batches of the last epoch trained. */
  onlineTop1?: number;
  /** Percent, with --online-probe and the kNN monitor: the probe on the test split at the last evaluation. */
  onlineValTop1?: number;
  runDir: string;
  checkpoint: string | null;
  /** Stopped early by SIGINT/SIGTERM (a checkpoint was saved). */
  interrupted?: string;
  /** The process's resident-memory high-water mark so far (MiB; getrusage ru_maxrss). */
  peakRssMB: number;
  /** The peak memory estimated before the first step (MiB; estimatePeakMemory), to compare with peakRssMB. */
  peakEstimateMB?: number;
  /**
   * The resumed run had already reached its last step (--epochs, or --max-steps): nothing was trained and nothing
   * in the run directory was rewritten. imagesPerSec, lastLoss and the kNN figures are then the run's own, read
   * back from its metrics.jsonl (median images/s over the recorded steps).
   */
  alreadyFinished?: true;
}

/**
 * What to tell someone who resumed a finished run: the run, where it stopped and how to train it further.
 * `summary` is the one pretrain returned with alreadyFinished.
 */
export function finishedMessage(c: PretrainConfig, summary: PretrainSummary): string {
  const byMaxSteps = c.maxSteps > 0 && summary.steps >= c.maxSteps;
  const more = byMaxSteps
    ? `a larger --max-steps (it stopped at --max-steps ${c.maxSteps}; 0: all --epochs)`
    : `a larger --epochs, e.g. ${resumeCommand(c.out, `--epochs ${c.epochs * 2}`)}`;
  return `${c.out} is already finished: epoch ${Number(summary.epochs.toFixed(2))} of ${c.epochs}, step ${summary.steps} (checkpoint ${summary.checkpoint ?? 'none'}); nothing was trained. To train it further, resume with ${more}`;
}

/**
 * The summary as the one JSON line `moco pretrain` prints: fractions rounded to `significant` digits (default 4;
 * `epochs` 1.4285714285714286 → 1.429), integers kept as they are, `extra` fields (e.g. worldSize) appended.
 */
export function summaryLine(summary: PretrainSummary, extra: Record<string, unknown> = {}, significant = 4): string {
  return JSON.stringify({ ...summary, ...extra }, (_k, v: unknown) =>
    typeof v === 'number' && Number.isFinite(v) && !Number.isInteger(v) ? Number(v.toPrecision(significant)) : v,
  );
}

/** The summary of a finished run that was resumed: its own recorded figures (see PretrainSummary.alreadyFinished). */
function finishedSummary(c: PretrainConfig, resumed: LoadedCheckpoint, stepsPerEpoch: number): PretrainSummary {
  let rows: StepMetrics[] = [];
  try {
    rows = readMetrics(c.out);
  } catch {
    /* a damaged metrics file: the figures are unknown (NaN) */
  }
  const steps = rows.filter((r) => r.knnTop1 === undefined);
  const knn = rows.filter((r) => r.knnTop1 !== undefined);
  const ips = steps
    .map((r) => r.imagesPerSec)
    .filter((x) => Number.isFinite(x) && x > 0)
    .sort((a, b) => a - b);
  const init = knn.find((r) => r.step === 0)?.knnTop1;
  const last = knn.filter((r) => r.step > 0).pop()?.knnTop1;
  const { epoch, batch, step } = resumed.state;
  return {
    epochs: epoch + batch / stepsPerEpoch,
    steps: step,
    imagesPerSec: ips.length ? ips[Math.floor(ips.length / 2)]! : NaN,
    lastLoss: steps.length ? steps[steps.length - 1]!.loss : NaN,
    ...(last !== undefined ? { knnTop1: last } : {}),
    ...(init !== undefined ? { knnTop1Init: init } : {}),
    runDir: c.out,
    checkpoint: resumed.file,
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    alreadyFinished: true,
  };
}

const WARMUP_STEPS = 2;

/**
 * The learning rate of an epoch under the config's schedule: set once per epoch (main_moco.py of v1/v2); MoCo v3
 * sets it every iteration at the fractional epoch (see iterationSchedule), which this gives for a whole `epoch`.
 */
export function epochLr(c: PretrainConfig, epoch: number): number {
  const lr = c.lrScaling === 'linear' ? linearScaledLr(c.lr, c.batchSize) : c.lr;
  if (c.mechanism === 'mocov3') return warmupCosineLr(lr, epoch, c.warmupEpochs, c.epochs);
  return c.cos ? cosineLr(lr, epoch, c.epochs) : stepLr(lr, epoch, c.schedule);
}

/**
 * MoCo v3's per-iteration schedule (moco-v3 main_moco.py's adjust_learning_rate and adjust_moco_momentum), at
 * batch `batch` of `epoch` with `batchesPerEpoch` batches: lr = warmupCosineLr(base·batch/256) and, with
 * --moco-m-cos, m = cosineMomentum(--moco-m); else m is --moco-m. Other mechanisms: null (lr per epoch).
 */
export function iterationSchedule(
  c: PretrainConfig,
  epoch: number,
  batch: number,
  batchesPerEpoch: number,
): { lr: number; m: number } | null {
  if (c.mechanism !== 'mocov3') return null;
  const e = epoch + batch / batchesPerEpoch;
  return { lr: epochLr(c, e), m: c.mocoMCos ? cosineMomentum(c.m, e, c.epochs) : c.m };
}

/** Classes of labelled data: its class names, or one more than its largest label. */
function openTrain(c: PretrainConfig): ImageDataset {
  const ds = openDataset(c.data, { split: 'train', seed: c.seed });
  return c.trainSubset > 0 && c.trainSubset < ds.length ? subset(ds, c.trainSubset, c.seed) : ds;
}

/**
 * The mechanism a config asks for, on `bankSize` training images (the memory bank's rows); `dist`: MoCo's and
 * MoCo v3's multi-process hooks (see DistributedTraining.hooks).
 */
export function mechanismOf(c: PretrainConfig, bankSize: number, dist?: MechanismRun['dist']): Mechanism {
  return createMechanism(c, { bankSize, ...(dist ? { dist } : {}) });
}

/** How the config's steps compute: memory format and autocast (the model's weights follow c.channelsLast too). */
export function stepPrecisionOf(c: PretrainConfig): StepPrecision {
  return {
    channelsLast: c.channelsLast,
    ...(c.amp === 'bf16'
      ? { amp: { deviceType: c.device.startsWith('cuda') ? ('cuda' as const) : ('cpu' as const) } }
      : {}),
  };
}

/** This process's part in the run. */
interface Process {
  dist?: DistributedTraining;
  isMain: boolean;
  world: number;
  rank: number;
  quiet: boolean;
}

/** The training data, its loader and the run's length, after every check that is cheap before the model exists. */
interface Prepared {
  train: ImageDataset;
  loader: Loader;
  estimate: ReturnType<typeof estimatePeakMemory>;
  bpe: number;
  totalSteps: number;
}

/**
 * Refuses what cannot run (settings, memory, too little data) before the model is built, warns about what runs
 * poorly, and opens the data. Whatever it opened is closed when it refuses.
 */
async function prepare(c: PretrainConfig, o: PretrainOptions, p: Process): Promise<Prepared> {
  const mechanism = c.mechanism ?? 'moco';
  if (p.dist && mechanism !== 'moco' && mechanism !== 'mocov3') {
    throw new Error(
      `--mechanism ${mechanism} runs in one process; multi-process training is MoCo's and MoCo v3's (--mechanism moco or mocov3)`,
    );
  }
  if (o.resume && c.initFrom !== o.resume.config.initFrom) {
    throw new Error(
      `--init-from ${c.initFrom ?? 'none'} with --resume ${o.resume.file}: a resumed run continues from its own checkpoint (weights, queue, optimizer, epoch), while --init-from starts a new run at epoch 0 from other weights; drop --init-from to continue the run, or drop --resume (and pass a new --out) to start from ${c.initFrom ?? 'the checkpoint'}`,
    );
  }
  if (o.resume && (o.resume.optimizerName ?? 'sgd') !== (c.optimizer ?? 'sgd')) {
    throw new Error(
      `--resume ${o.resume.file}: the run was trained with --optimizer ${o.resume.optimizerName ?? 'sgd'}, this one is set to --optimizer ${c.optimizer}; drop --optimizer to continue with ${o.resume.optimizerName ?? 'sgd'}, or start a new run with another --out`,
    );
  }
  if (p.dist && c.onlineProbe) {
    throw new Error(
      `--online-probe runs in one process (its classifier is not averaged across processes); drop --online-probe or --nproc-per-node`,
    );
  }
  const { world, rank } = p;
  const train = openTrain(c);
  if (c.onlineProbe && !train.labels) {
    train.dispose();
    throw new Error(
      `--online-probe needs class labels, and data ${c.data} has none (${train.description}); pass labelled data (an ImageFolder of class folders, cifar10:DIR, cifar100:DIR, synthetic:N) or drop --online-probe`,
    );
  }
  if (c.batchSize % world || (c.batchSize / world) % c.bnSplits) {
    throw new Error(
      `invalid --batch-size ${c.batchSize}: each of the ${world} processes takes an equal share that --bn-splits ${c.bnSplits} divides, so it must be a multiple of ${world * c.bnSplits}; pass --batch-size ${Math.max(1, Math.round(c.batchSize / (world * c.bnSplits))) * world * c.bnSplits}, or another --bn-splits or process count`,
    );
  }
  const twoViews = (c.mechanism ?? 'moco') !== 'memory-bank';
  // Images decoded into memory (CIFAR-sized) are augmented on this thread between steps, with the model's thread
  // count: switching libtorch's threads for every batch rebuilds the OpenMP team and oneDNN's caches (measured,
  // ResNet-18 width 32 on CIFAR: 108 → 129 images/s end to end). Image files are decoded and augmented by
  // --workers worker threads: their event loops keep decoding while this thread is inside a training step.
  const loader = new Loader(train, {
    batchSize: c.batchSize / world,
    shuffle: true,
    dropLast: true,
    seed: c.seed,
    augment: new Augmentation(c.augment as PresetName, {
      size: c.imageSize,
      threads: null,
      ...(c.cropMin > 0 ? { cropMin: c.cropMin } : {}),
    }),
    twoCrops: twoViews,
    prefetch: Math.max(2, c.workers),
    fileWorkers: c.workers,
    device: c.device === 'cpu' ? undefined : c.device,
    rank,
    worldSize: world,
  });
  const source = await loader.prepare();
  // Before the model is built or a step runs: a run that cannot fit is refused while that is cheap.
  const estimate = estimatePeakMemory(c, {
    trainImages: train.length,
    files: source.kind === 'files',
    worldSize: world,
  });
  if (o.memoryCheck ?? true) {
    try {
      checkMemory(c, estimate, availableMemory(), world);
    } catch (e) {
      await loader.close();
      train.dispose();
      throw e;
    }
  }
  if (train.length < c.batchSize) {
    throw new Error(
      `data ${c.data}: ${train.length} images is fewer than --batch-size ${c.batchSize}; lower --batch-size`,
    );
  }
  const perStep = keysPerStep(c);
  if ((c.mechanism ?? 'moco') === 'moco' && c.K > train.length && !p.quiet) {
    // Not an error (it trains), but the queue then holds several keys of each image: an image's own earlier keys
    // become its negatives, and the contrast is weaker than the queue size suggests.
    process.stderr.write(
      `warning: --moco-k ${c.K} is larger than the dataset ${c.data} (${train.length} training images): the queue holds several keys of each image, so images are contrasted with their own earlier keys; ${perStep <= train.length ? `pass --moco-k ${train.length} or less` : `the queue cannot be smaller than the ${perStep} keys a step enqueues, so pass a smaller --batch-size`}\n`,
    );
  }
  const bpe = loader.batchesPerEpoch;
  const totalSteps = c.maxSteps > 0 ? Math.min(c.maxSteps, c.epochs * bpe) : c.epochs * bpe;
  return { train, loader, estimate, bpe, totalSteps };
}

/** The kNN monitor's bank (the training set) and queries (the test split), or null when it is off or cannot run. */
function knnDataOf(c: PretrainConfig, train: ImageDataset, quiet: boolean): KnnObserverOptions['data'] | null {
  if (c.knnEvery <= 0) return null;
  let queries: ImageDataset | null;
  try {
    queries = openDataset(c.data, { split: 'test', seed: c.seed });
  } catch {
    queries = null;
  }
  if (!train.labels || !queries?.labels) {
    queries?.dispose();
    if (!quiet)
      process.stderr.write(
        `--knn-every ${c.knnEvery}: ${c.data} has no labelled test/val split; the kNN monitor is off\n`,
      );
    return null;
  }
  return { bank: train, queries };
}

/**
 * The mechanism and its optimizer on the run's device, initialised from --init-from's weights or restored from a
 * resumed checkpoint, the same on every rank; the run's config, its --init-from pinned to the file read. `extrasOf`
 * builds the other state the checkpoint carries (the online probe) once the mechanism exists.
 */
async function buildModel(
  c: PretrainConfig,
  o: PretrainOptions,
  p: Process,
  bankSize: number,
  extrasOf: (mech: Mechanism) => CheckpointExtra[] = () => [],
): Promise<{ mech: Mechanism; opt: Optimizer; state: RunState; config: PretrainConfig }> {
  // Only MoCo and MoCo v3 run in several processes (refused before for the others): their hooks gather keys
  // (and shuffle BN for MoCo; v3 has no ShuffleBN).
  const mech = mechanismOf(c, bankSize, p.dist?.hooks(c.mechanism !== 'mocov3' && c.shuffleBn));
  if (c.initFrom && !o.resume) {
    try {
      const src = readInitSource(c.initFrom);
      try {
        // The fresh-head line is what the run trains, so it is said with --quiet too (by the main process).
        const note = (line: string): void => void (p.isMain && process.stderr.write(`${line}\n`));
        initEncoders(mech, src, c, note, p.quiet ? undefined : note);
      } finally {
        disposeInitSource(src);
      }
      c = { ...c, initFrom: pinnedInitFrom(src) };
    } catch (e) {
      mech.dispose();
      throw e;
    }
  }
  if (c.device !== 'cpu') mech.to(c.device);
  if (c.channelsLast) mech.toMemoryFormat('channelsLast');
  if (c.amp === 'bf16' && !c.device.startsWith('cuda') && cpuBf16Features().length === 0 && !p.quiet) {
    process.stderr.write(
      'warning: --amp bf16 on a CPU without native bfloat16 (no AVX-512 BF16 or AMX in /proc/cpuinfo): results are correct but the step is slower than fp32; drop --amp here\n',
    );
  }
  const opt = createOptimizer(c.optimizer ?? 'sgd', mech.trainableParameters(), {
    lr: c.lr,
    momentum: c.momentum,
    weightDecay: c.wd,
  });
  let state: RunState = { epoch: 0, batch: 0, step: 0 };
  const extras = extrasOf(mech);
  if (o.resume) {
    restoreCheckpoint(o.resume, mech, opt, extras);
    state = { ...o.resume.state };
  }
  // Every rank starts from rank 0's weights, queue and counters (also after a resume on another world size).
  if (p.dist) await p.dist.syncState([...mech.stateDict().values()]);
  return { mech, opt, state, config: c };
}

/** Runs (or resumes) pre-training as configured: the setup above, then one run of the training loop. */
export async function pretrain(config: PretrainConfig, o: PretrainOptions = {}): Promise<PretrainSummary> {
  let c = config;
  const dist = o.dist;
  const isMain = dist ? dist.isMain : (o.isMain ?? true);
  const quiet = Boolean(o.quiet) || !isMain;
  const p: Process = { dist, isMain, world: dist?.worldSize ?? 1, rank: dist?.rank ?? 0, quiet };
  setNumThreads(c.threads);
  manualSeed(c.seed);

  const { train, loader, estimate, bpe, totalSteps } = await prepare(c, o, p);
  if (o.resume && o.resume.state.step >= totalSteps) {
    // Nothing to train. Running the observers would evaluate again and rewrite run.json and the report as a new
    // session of zero steps; the run directory stays as the run left it.
    await loader.close();
    train.dispose();
    for (const t of o.resume.tensors.values()) t.dispose();
    return finishedSummary(c, o.resume, bpe);
  }
  const knnData = knnDataOf(c, train, quiet);
  const extras: { probe?: OnlineProbeObserver } = {};
  // The probe is built with the model, so that a resumed checkpoint restores it; it joins the run log once that is open.
  const extrasOf = (m: Mechanism): CheckpointExtra[] => {
    if (!c.onlineProbe) return [];
    extras.probe = new OnlineProbeObserver({
      featureDim: m.encoderQ.featureDim,
      numClasses: numClassesOf(train),
      seed: c.seed,
      device: c.device,
      val: knnData?.queries ?? null,
    });
    return [extras.probe];
  };
  let built: Awaited<ReturnType<typeof buildModel>>;
  try {
    built = await buildModel(c, o, p, train.length, extrasOf);
  } catch (e) {
    // Refused before the first step (a checkpoint that does not fit): close what prepare opened.
    await loader.close();
    train.dispose();
    knnData?.queries.dispose();
    throw e;
  }
  const { mech, opt, state } = built;
  c = built.config;
  const probe = extras.probe ?? null;
  if (isMain) {
    mkdirSync(c.out, { recursive: true });
    writeTextAtomic(join(c.out, 'config.json'), `${JSON.stringify(c, null, 2)}\n`);
  }

  const warn = stderrWarner(quiet);
  const startedAt = performance.now();
  const runLog = isMain
    ? await RunLogObserver.open(c, { fromStep: state.step, stepsPerEpoch: bpe, totalSteps, command: o.command, warn })
    : null;
  const progress = new ProgressObserver({ totalSteps, fromStep: state.step, printFreq: c.printFreq, enabled: !quiet });
  const signals = o.handleSignals ? new SignalObserver() : null;
  const checkpoints = new CheckpointObserver({
    resumedFrom: o.resume?.file ?? null,
    enabled: isMain,
    ...(probe ? { extras: [probe] } : {}),
  });
  const knn = knnData ? new KnnObserver({ data: knnData, runLog, renderGrid: o.neighbourGrid }) : null;
  probe?.attach(runLog);
  const onStep = o.onStep;
  // In this order: a checkpoint is written before the kNN evaluation of the same epoch, and both before the
  // events are flushed.
  const observers: TrainObserver[] = [
    checkpoints,
    ...(knn ? [knn] : []),
    ...(probe ? [probe] : []),
    ...(runLog ? [runLog] : []),
    progress,
    ...(onStep
      ? [{ step: (_ctx: unknown, e: StepEvent) => onStep({ epoch: e.epoch, step: e.step, loss: e.loss, lr: e.lr }) }]
      : []),
    ...(signals ? [signals] : []),
    ...(o.observers ?? []),
  ];
  const step = pretrainStep(c, bpe, stepPrecisionOf(c), dist, () => checkpoints.last);
  let r: LoopResult;
  try {
    r = await new Loop(step, observers).run((epoch, startBatch) => loader.epoch(epoch, { startBatch }), {
      config: c,
      model: mech,
      optimizer: opt,
      epochs: c.epochs,
      batchesPerEpoch: bpe,
      totalSteps,
      state,
      lr: (e) => epochLr(c, e),
      log: (line) => progress.log(line),
      warn,
      worldSize: p.world,
      throughputWindow: c.printFreq,
      warmupSteps: WARMUP_STEPS,
      startedAt,
    });
  } finally {
    await loader.close();
    opt.dispose();
    mech.dispose();
    train.dispose();
    knnData?.queries.dispose();
  }
  const end = r.state;
  return {
    epochs: end.epoch + (end.batch > 0 ? end.batch / bpe : 0),
    steps: end.step,
    imagesPerSec: r.imagesPerSec,
    lastLoss: r.lastLoss,
    ...(knn?.top1 !== undefined ? { knnTop1: knn.top1 } : {}),
    ...(knn?.top1Init !== undefined ? { knnTop1Init: knn.top1Init } : {}),
    ...(probe?.top1 !== undefined ? { onlineTop1: probe.top1 } : {}),
    ...(probe?.valTop1 !== undefined ? { onlineValTop1: probe.valTop1 } : {}),
    runDir: c.out,
    checkpoint: checkpoints.last,
    ...(r.stopped ? { interrupted: r.stopped } : {}),
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    peakEstimateMB: estimate.peakBytes / 2 ** 20,
  };
}

/**
 * Pre-training's step: the batch's randomness keyed by (seed, epoch, batch), MoCo v3's per-iteration lr and
 * momentum, then forward, backward, gradient averaging and the optimizer (trainStep). `lastCheckpoint` names
 * the checkpoint a diverged run can continue from.
 */
function pretrainStep(
  c: PretrainConfig,
  bpe: number,
  precision: StepPrecision,
  dist: DistributedTraining | undefined,
  lastCheckpoint: () => string | null,
): LoopStep<PretrainLoop, Batch> {
  const afterBackward = dist ? (p: Tensor[]): void => dist.afterBackward(p) : undefined;
  return {
    train(ctx, batch, at) {
      const mech = ctx.model;
      const sched = iterationSchedule(c, at.epoch, at.batchIndex, bpe);
      if (sched) {
        ctx.optimizer.setLr(sched.lr);
        mech.setMomentum?.(sched.m);
      }
      const n = batch.views[0]!.shape[0]!;
      const rnd = mech.randomness(stepRng(c.seed, at.epoch, at.batchIndex), n);
      const views = { views: batch.views, indices: batch.indices };
      const out = trainStep(mech, ctx.optimizer, views, rnd, afterBackward, precision);
      const output = { ...out, targets: batch.labels };
      return { loss: out.loss.item(), samples: n, output, ...(sched ? { lr: sched.lr } : {}) };
    },
    diverged(_ctx, loss, at) {
      return new Error(
        `loss is ${loss} at step ${at.step} (epoch ${at.epoch}); stopping. ` +
          `Last good checkpoint: ${lastCheckpoint() ?? 'none'}. Try a lower --lr.`,
      );
    },
  };
}
