// The semi-supervised protocol of the SimCLR and MoCo papers: the whole network (backbone and a fresh linear
// classifier) fine-tuned on a seeded, class-balanced fraction of the training labels (the papers' 1% and 10%),
// validated every epoch, on the shared training Loop with the linear protocol's observers.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, noGrad, type Tensor } from '../torch/index.js';
import { Linear } from '../nn/index.js';
import { ResNet, VisionTransformer, createModel, createViT } from '../models/index.js';
import { Loader, Rng, numClassesOf, type ImageDataset } from '../data/index.js';
import { FileDataset } from '../data/datasets/dataset.js';
import { loadSafetensors } from '../io/safetensors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { MOMENTUM_PREFIX, SGD, lrAt, momentumFromTensors } from '../optim/index.js';
import { Loop, type EpochEvent, type LoopContext, type LoopStep, type StepAt, type StepOutput } from '../loop/index.js';
import type { Encoder, EncoderInfo } from './encoder.js';
import { extractFeatures, inEvalMode } from './features.js';
import { randomPadCrop } from './pad-crop.js';
import { linclsTrainTransform } from './lincls.js';
import { AccuracyMeter, LinearHead, bestOf, linclsStep, type Accuracy, type EpochMetrics } from './linear-probe.js';
import {
  EpochLogObserver,
  FinetuneCheckpointObserver,
  LinclsEventsObserver,
  type FinetuneCheckpointLoop,
} from './observers/index.js';

/** The per-class rule of {@link labelFractionSubset}. */
export function labelsPerClass(count: number, fraction: number): number {
  return Math.min(count, Math.max(1, Math.round(fraction * count)));
}

/**
 * A class-balanced, seeded fraction of a labelled training split: from each class, `round(fraction × its count)`
 * samples (at least 1), the first of a permutation seeded by (seed, class). Returns the chosen indices in dataset
 * order. Throws naming `from` (default '--label-fraction') when `fraction` is not in (0, 1], and naming the class
 * when one of the `numClasses` has no sample.
 */
export function labelFractionSubset(
  labels: Int32Array,
  fraction: number,
  seed: number,
  o: { numClasses?: number; classes?: readonly string[] | null; from?: string } = {},
): Int32Array {
  const from = o.from ?? '--label-fraction';
  if (!(fraction > 0 && fraction <= 1))
    throw new RangeError(`${from}: expected a fraction in (0, 1] (the papers use 0.01 and 0.1), got ${fraction}`);
  const numClasses = o.numClasses ?? o.classes?.length ?? labels.reduce((n, l) => Math.max(n, l + 1), 0);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i]!;
    if (c < 0 || c >= numClasses) throw new RangeError(`label ${c} of sample ${i} is outside 0..${numClasses - 1}`);
    byClass[c]!.push(i);
  }
  const chosen: number[] = [];
  byClass.forEach((members, c) => {
    if (!members.length) {
      const name = o.classes?.[c] !== undefined ? `'${o.classes[c]}' (label ${c})` : `label ${c}`;
      throw new Error(
        `${from}: class ${name} has no training images, so no fraction of it can be labelled; every one of the ${numClasses} classes needs at least one`,
      );
    }
    const perm = new Rng(seed, 'finetune-labels', c).permutation(members.length);
    const k = labelsPerClass(members.length, fraction);
    for (let j = 0; j < k; j++) chosen.push(members[perm[j]!]!);
  });
  return Int32Array.from(chosen.sort((a, b) => a - b));
}

/** The settings of a fine-tuning run; every field has a default but `labelFraction`. */
export interface FinetuneSchedule {
  /**
   * Fraction of each class's training labels to fine-tune on, in (0, 1]: the SimCLR / MoCo semi-supervised
   * protocol uses 0.01 and 0.1 (1 trains on every label).
   */
  labelFraction: number;
  /** Default 60 below a 10% fraction, else 30 (SimCLR's fine-tuning: 60 epochs for 1%, 30 for 10%). */
  epochs?: number;
  /** Base lr, decayed by a cosine once an epoch; default 0.05 × batchSize / 256 (SimCLR's fine-tuning). */
  lr?: number;
  /** Samples a step; default 256. */
  batchSize?: number;
  /** Default 0.9. */
  momentum?: number;
  /** Nesterov momentum; default true (SimCLR's fine-tuning optimiser). */
  nesterov?: boolean;
  /** Weight decay on every parameter; default 0 (SimCLR fine-tunes without regularisation). */
  weightDecay?: number;
  /** Seeds the label subset, the classifier's init, a random init, the sample order and augmentation; default 0. */
  seed?: number;
  /** Stop after this many optimiser steps in all (smoke tests); default unlimited. */
  maxSteps?: number;
}

/** {@link FinetuneSchedule} with its defaults filled in. */
export type ResolvedFinetune = Required<FinetuneSchedule>;

/** Fills in the defaults of {@link FinetuneSchedule}. */
export function resolveFinetune(s: FinetuneSchedule): ResolvedFinetune {
  const batchSize = s.batchSize ?? 256;
  return {
    labelFraction: s.labelFraction,
    epochs: s.epochs ?? (s.labelFraction < 0.1 ? 60 : 30),
    lr: s.lr ?? (0.05 * batchSize) / 256,
    batchSize,
    momentum: s.momentum ?? 0.9,
    nesterov: s.nesterov ?? true,
    weightDecay: s.weightDecay ?? 0,
    seed: s.seed ?? 0,
    maxSteps: s.maxSteps ?? Infinity,
  };
}

/** The model fine-tuning trains: a ResNet (classifier `fc`) or a ViT (classifier `head`). */
export type FinetuneModel = ResNet | VisionTransformer;

/**
 * Makes `model` the network fine-tuning trains: a fresh classifier for `numClasses` in place of its head
 * (main_lincls.py's init, N(0, 0.01) weights and zero bias, from `seed`), every parameter trainable, train mode
 * (BatchNorm normalises with batch statistics and updates its running ones). Returns the model.
 */
export function finetuneModel(model: FinetuneModel, numClasses: number, seed = 0): FinetuneModel {
  const init = LinearHead.init(model.featureDim, numClasses, seed);
  const fc = new Linear(model.featureDim, numClasses);
  noGrad(() => {
    fc.weight.copy_(init.weight);
    fc.bias!.copy_(init.bias);
  });
  init.dispose();
  model.replaceModule(model instanceof ResNet ? 'fc' : 'head', fc);
  model.requiresGrad_(true);
  model.train();
  return model;
}

/** The optimiser of fine-tuning: SGD over every parameter of the model (see {@link FinetuneSchedule}). */
export function finetuneOptimizer(model: FinetuneModel, s: ResolvedFinetune): SGD {
  return new SGD(model.parameters(), {
    lr: s.lr,
    momentum: s.momentum,
    nesterov: s.nesterov,
    weightDecay: s.weightDecay,
  });
}

/** The lr of an epoch: cosine from `s.lr` to 0 over the epochs, set once at the start of each. */
export function finetuneLr(s: ResolvedFinetune, epoch: number): number {
  return lrAt({ baseLr: s.lr, epochs: s.epochs, cos: true, milestones: [] }, epoch);
}

/**
 * One fine-tuning step on images x (B × 3 × H × W, preprocessed) and labels y (B, int64): the model in train
 * mode, then lincls's step through the whole network. Returns [loss, correct top-1 count].
 */
export function finetuneStep(model: FinetuneModel, opt: SGD, x: Tensor, y: Tensor): [number, number] {
  model.train();
  return linclsStep(model, opt, x, y);
}

/** One training batch of fine-tuning. */
export interface FinetuneBatch {
  /** The augmented images (called inside the step's tidy scope). */
  images(): Tensor;
  /** int64 labels. */
  labels: Tensor;
}

/** Fine-tuning's part of the loop: the whole model trains, each epoch's result is its metrics. */
export interface FinetuneLoop {
  config: ResolvedFinetune;
  model: FinetuneModel;
  optimizer: SGD;
  output: undefined;
  metrics: EpochMetrics;
}

/** Top-1/top-5/loss of the model (eval mode, then back to train mode) on a dataset through `encoder`'s eval transform. */
async function validate(
  model: FinetuneModel,
  encoder: Encoder,
  val: ImageDataset,
  batchSize: number,
): Promise<Accuracy> {
  const out = await inEvalMode(model, () =>
    extractFeatures((x) => model.forward(x), val, { ...encoder.preprocess(), normalize: false, batchSize }),
  );
  const m = new AccuracyMeter();
  m.add(out.features, out.labels!);
  out.features.dispose();
  out.labels?.dispose();
  return m.result();
}

class FinetuneStep implements LoopStep<FinetuneLoop, FinetuneBatch> {
  readonly history: EpochMetrics[] = [];
  private lossSum = 0;
  private correct = 0;
  private seen = 0;
  private batches = 0;
  private from = 0;

  constructor(
    private readonly encoder: Encoder,
    private readonly val: ImageDataset,
    private readonly evalBatchSize: number,
    private readonly lrFrom: string,
  ) {}

  epochStart(): void {
    this.lossSum = this.correct = this.seen = this.batches = 0;
    this.from = performance.now();
  }

  train(ctx: LoopContext<FinetuneLoop>, b: FinetuneBatch): StepOutput<undefined> {
    const [loss, correct] = finetuneStep(ctx.model, ctx.optimizer, b.images(), b.labels);
    const n = b.labels.shape[0]!;
    this.lossSum += loss;
    this.correct += correct;
    this.seen += n;
    this.batches++;
    return { loss, samples: n };
  }

  diverged(_ctx: LoopContext<FinetuneLoop>, loss: number, at: StepAt, lr: number): Error {
    return new Error(
      `fine-tuning diverged at epoch ${at.epoch + 1}, step ${at.step}: the loss is ${loss}. ` +
        `The lr is too large: ${this.lrFrom} ${lr}; try ${Number((lr / 10).toPrecision(2))}`,
    );
  }

  async epochEnd(ctx: LoopContext<FinetuneLoop>, epoch: number, lr: number): Promise<EpochMetrics> {
    const val = await validate(ctx.model, this.encoder, this.val, this.evalBatchSize);
    const m: EpochMetrics = {
      epoch,
      lr,
      trainLoss: this.lossSum / Math.max(1, this.batches),
      trainTop1: (100 * this.correct) / Math.max(1, this.seen),
      val,
      seconds: (performance.now() - this.from) / 1000,
      steps: ctx.state.step,
    };
    this.history.push(m);
    return m;
  }
}

export interface FinetuneOpts extends FinetuneSchedule {
  /** How the caller names `lr` and `labelFraction` in messages; default '--lr', '--label-fraction'. */
  lrFrom?: string;
  labelFractionFrom?: string;
  /**
   * Start from random weights of the encoder's architecture (seeded) instead of its pre-trained ones: the
   * baseline a pre-trained model's fine-tuning is compared with. Default false.
   */
  randomInit?: boolean;
  /**
   * Where `label-subset.tsv` (the labelled samples: index in the training split, label, class, file), the last
   * `checkpoint.safetensors` (every epoch, with the optimiser's momentum, for `resume`), `model_best.safetensors`,
   * TensorBoard event files (finetune/* scalars an epoch) and finetune.json (the result) go; default: not saved.
   */
  outDir?: string;
  /**
   * Continue a run from its `checkpoint.safetensors` (or the `outDir` holding it): the whole model, the momentum,
   * the epoch, step count and history are restored, and the remaining epochs see the batches an uninterrupted
   * run would have seen. Every setting that decides them must be the run's own. Default: start afresh.
   */
  resume?: string;
  /** Images per forward in validation; default `batchSize`. */
  evalBatchSize?: number;
  /** Progress lines (stderr in the CLI). */
  onLog?: (line: string) => void;
  /** Called after each epoch. */
  onEpoch?: (m: EpochMetrics) => void;
}

export interface FinetuneResult {
  arch: string;
  /** 'pretrained' (the encoder's weights) or 'random' (`randomInit`). */
  init: 'pretrained' | 'random';
  numClasses: number;
  labelFraction: number;
  /** Labelled training samples fine-tuned on, of `trainTotal`. */
  trainSamples: number;
  trainTotal: number;
  valSamples: number;
  epochs: number;
  steps: number;
  lr: number;
  /** Best validation epoch. */
  best: { epoch: number; top1: number; top5: number };
  last: Accuracy;
  history: EpochMetrics[];
  checkpoint: string | null;
  bestCheckpoint: string | null;
  /** The list of labelled samples (label-subset.tsv), or null without `outDir`. */
  subsetFile: string | null;
  seconds: number;
}

/** Re-initialises every weight but the classifier, as a fresh model of the same architecture seeded by `seed`. */
function reinitialize(model: FinetuneModel, info: EncoderInfo, seed: number): void {
  manualSeed(seed);
  const fresh =
    model instanceof ResNet
      ? createModel(info.arch, { cifarStem: info.cifarStem, width: info.width })
      : createViT(info.arch, {
          imgSize: model.patch_embed.imgSize,
          patchSize: model.patch_embed.patchSize,
          depth: model.blocks.children().length,
        });
  try {
    const head = model instanceof ResNet ? 'fc.' : 'head.';
    model.loadStateDict(new Map([...fresh.stateDict()].filter(([k]) => !k.startsWith(head))), { strict: false });
  } finally {
    fresh.dispose();
  }
}

interface ResumePoint {
  tensors: Map<string, Tensor>;
  epoch: number;
  steps: number;
  history: EpochMetrics[];
  file: string;
}

function readResumePoint(path: string, config: Record<string, unknown>): ResumePoint {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'checkpoint.safetensors') : path;
  if (!existsSync(file))
    throw new Error(
      `--resume: ${file} not found (give the checkpoint.safetensors or the --out folder of a moco finetune run)`,
    );
  const { tensors, metadata } = loadSafetensors(file);
  const free = (): void => {
    for (const t of tensors.values()) t.dispose();
  };
  const info = metadata.finetune
    ? (JSON.parse(metadata.finetune) as { steps?: number; history?: EpochMetrics[]; config?: Record<string, unknown> })
    : null;
  if (!info?.config || info.steps === undefined || !info.history) {
    free();
    throw new Error(`--resume: ${file} is not the last checkpoint of a moco finetune run (no finetune state)`);
  }
  // Everything that decides which samples, batches and updates come next must match; maxSteps may grow. The
  // epochs set the cosine schedule, so they are fixed too.
  for (const k of Object.keys(config)) {
    if (k === 'maxSteps') continue;
    if (JSON.stringify(info.config[k]) !== JSON.stringify(config[k])) {
      free();
      throw new Error(
        `--resume: ${file} was written with ${k} = ${JSON.stringify(info.config[k])}, this run has ${JSON.stringify(config[k])}`,
      );
    }
  }
  return { tensors, epoch: info.history.length, steps: info.steps, history: info.history, file };
}

/** The lines of label-subset.tsv: index in the training split, label, class name, file (files only). */
function subsetLines(indices: Int32Array, subset: ImageDataset): string {
  const paths = subset instanceof FileDataset ? subset.paths : null;
  const rows = ['index\tlabel\tclass\tpath'];
  for (let i = 0; i < subset.length; i++) {
    const y = subset.labels![i]!;
    rows.push(`${indices[i]}\t${y}\t${subset.classes?.[y] ?? ''}\t${paths?.[i] ?? ''}`);
  }
  return `${rows.join('\n')}\n`;
}

/**
 * Semi-supervised fine-tuning (SimCLR Appendix B.5, MoCo's semi-supervised table): the encoder's whole network,
 * backbone and a fresh linear classifier, trained with SGD (Nesterov momentum 0.9, no weight decay, lr 0.05 ×
 * batch/256 with a cosine decay; see {@link FinetuneSchedule}) and cross-entropy on a class-balanced fraction of the
 * training labels ({@link labelFractionSubset}), BatchNorm in train mode. Augmentation is the linear protocol's
 * (RandomResizedCrop + flip; 32-px encoders pad-4 crop + flip), validation the encoder's deterministic eval
 * transform, top-1/top-5 after every epoch. `encoder.model` is trained in place (its head replaced): dispose the
 * encoder when done. Runs on the training {@link Loop}.
 */
export async function finetune(
  encoder: Encoder,
  train: ImageDataset,
  val: ImageDataset,
  o: FinetuneOpts,
): Promise<FinetuneResult> {
  const t0 = performance.now();
  const fractionFrom = o.labelFractionFrom ?? '--label-fraction';
  if (!(o.labelFraction > 0 && o.labelFraction <= 1))
    throw new RangeError(
      `${fractionFrom}: expected a fraction in (0, 1] (the papers use 0.01 and 0.1), got ${o.labelFraction}`,
    );
  const s = resolveFinetune(o);
  const lrFrom = o.lr === undefined ? 'the default lr (0.05 × batch/256)' : (o.lrFrom ?? '--lr');
  const log = o.onLog ?? (() => undefined);
  if (!train.labels) throw new Error(`fine-tuning needs labels, but the training data has none (${train.description})`);
  await val.prepare();
  if (!val.labels) throw new Error(`fine-tuning needs labels, but the validation data has none (${val.description})`);
  const numClasses = numClassesOf(train, val);
  const indices = labelFractionSubset(train.labels, s.labelFraction, s.seed, {
    numClasses,
    classes: train.classes,
    from: fractionFrom,
  });
  const subset = train.select(indices);
  const model = encoder.model;
  try {
    await subset.prepare();
    log(
      `fine-tuning on ${subset.length} of ${train.length} training labels (${s.labelFraction} of each class, seed ${s.seed})`,
    );
    const subsetHash = createHash('sha256').update(subsetLines(indices, subset)).digest('hex').slice(0, 16);
    const init = o.randomInit ? 'random' : 'pretrained';
    const config = {
      labelFraction: s.labelFraction,
      epochs: s.epochs,
      lr: s.lr,
      batchSize: s.batchSize,
      momentum: s.momentum,
      nesterov: s.nesterov,
      weightDecay: s.weightDecay,
      seed: s.seed,
      maxSteps: Number.isFinite(s.maxSteps) ? s.maxSteps : null,
      init,
      trainSamples: subset.length,
      subset: subsetHash,
      source: encoder.info.file,
    };
    const resume = o.resume ? readResumePoint(o.resume, config) : null;
    if (o.outDir) mkdirSync(o.outDir, { recursive: true });
    const subsetFile = o.outDir ? join(o.outDir, 'label-subset.tsv') : null;
    if (subsetFile) writeTextAtomic(subsetFile, subsetLines(indices, subset));

    if (o.randomInit) reinitialize(model, encoder.info, s.seed);
    finetuneModel(model, numClasses, s.seed);
    const opt = finetuneOptimizer(model, s);
    if (resume) {
      try {
        const weights = new Map([...resume.tensors].filter(([k]) => !k.startsWith(MOMENTUM_PREFIX)));
        model.loadStateDict(weights);
        opt.loadStateDict({ buffers: momentumFromTensors(resume.tensors), groups: opt.stateDict().groups });
      } catch (e) {
        throw new Error(`--resume: ${resume.file} does not fit this model: ${(e as Error).message}`, { cause: e });
      } finally {
        for (const t of resume.tensors.values()) t.dispose();
      }
      log(`resuming from ${resume.file}: epoch ${resume.epoch + 1}, ${resume.steps} steps done`);
    }

    const ckptPath = o.outDir ? join(o.outDir, 'checkpoint.safetensors') : null;
    const bestPath = o.outDir ? join(o.outDir, 'model_best.safetensors') : null;
    const meta = (m: EpochMetrics, history?: EpochMetrics[]): Record<string, unknown> => ({
      epoch: m.epoch,
      top1: m.val.top1,
      top5: m.val.top5,
      classes: train.classes,
      config,
      steps: m.steps,
      ...(history ? { history } : {}),
    });
    const events = o.outDir ? new LinclsEventsObserver(o.outDir, resume?.steps, 'finetune') : null;
    const observers = [
      new EpochLogObserver<FinetuneLoop>(),
      new FinetuneCheckpointObserver({
        info: encoder.info,
        bestPath,
        lastPath: ckptPath,
        meta,
        history: resume?.history,
      }),
      ...(events ? [events] : []),
      ...(o.onEpoch ? [{ epochEnd: (_c: unknown, e: EpochEvent<EpochMetrics>): void => o.onEpoch!(e.metrics) }] : []),
    ];

    const { spec, padCrop } = linclsTrainTransform(encoder);
    // Image files are decoded by worker threads: the training step blocks this thread's event loop.
    const loader = new Loader(subset, {
      batchSize: s.batchSize,
      shuffle: true,
      dropLast: false,
      seed: s.seed,
      augment: spec,
      twoCrops: false,
      fileWorkers: 2,
    });
    async function* batches(epoch: number): AsyncIterable<FinetuneBatch> {
      for await (const b of loader.epoch(epoch)) {
        try {
          const x = b.views[0]!;
          yield {
            images: () =>
              padCrop ? randomPadCrop(x, new Rng(s.seed, 'finetune-padcrop', epoch, b.index), spec.mean, spec.std) : x,
            labels: b.labels!,
          };
        } finally {
          b.dispose();
        }
      }
    }
    const step = new FinetuneStep(encoder, val, o.evalBatchSize ?? s.batchSize, lrFrom);
    const bpe = Math.ceil(subset.length / s.batchSize);
    let steps: number;
    try {
      const r = await new Loop<FinetuneLoop & FinetuneCheckpointLoop, FinetuneBatch>(step, observers).run(batches, {
        config: s,
        model,
        optimizer: opt,
        epochs: s.epochs,
        batchesPerEpoch: bpe,
        totalSteps: Math.min(s.maxSteps, s.epochs * bpe),
        state: { epoch: resume?.epoch ?? 0, batch: 0, step: resume?.steps ?? 0 },
        lr: (epoch) => finetuneLr(s, epoch),
        log,
      });
      steps = r.state.step;
    } finally {
      opt.dispose();
      await loader.close();
      events?.close();
      model.eval();
      model.requiresGrad_(false);
    }
    const history = [...(resume?.history ?? []), ...step.history];
    if (!history.length) throw new Error('fine-tuning: no epoch ran (epochs or maxSteps is 0)');
    const b = bestOf(history);
    const result: FinetuneResult = {
      arch: encoder.info.arch,
      init,
      numClasses,
      labelFraction: s.labelFraction,
      trainSamples: subset.length,
      trainTotal: train.length,
      valSamples: val.length,
      epochs: history.length,
      steps,
      lr: s.lr,
      best: { epoch: b.epoch, top1: b.val.top1, top5: b.val.top5 },
      last: history[history.length - 1]!.val,
      history,
      checkpoint: ckptPath,
      bestCheckpoint: bestPath,
      subsetFile,
      seconds: (performance.now() - t0) / 1000,
    };
    if (o.outDir) writeTextAtomic(join(o.outDir, 'finetune.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    subset.dispose();
  }
}
