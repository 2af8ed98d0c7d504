// The linear classifier of main_lincls.py and its training step, shared by the image protocol (lincls.ts) and
// the cached-feature protocol (trainLinearOnFeatures here): a new fc with N(0, 0.01) weights and zero bias, SGD (lr 30,
// momentum 0.9, wd 0), batch 256, step decay ×0.1 at epochs 60 and 80 (or cosine), cross-entropy.
import { F, Tensor, empty, keep, noGrad, tensor, tidy, zeros } from '../torch/index.js';
import { SGD, lrAt } from '../optim/index.js';
import { Rng } from '../data/rng.js';
import {
  Loop,
  type EpochEvent,
  type LoopContext,
  type LoopObserver,
  type LoopStep,
  type StepAt,
  type StepOutput,
} from '../loop/index.js';

/** The schedule and optimiser of the linear protocol. */
export interface LinearSchedule {
  /** Default 100. */
  epochs?: number;
  /** Base learning rate; default 30 (main_lincls.py's, for ImageNet encoders; `lincls` picks it by encoder). */
  lr?: number;
  /** Samples a step; default 256. */
  batchSize?: number;
  /** Default 0.9. */
  momentum?: number;
  /** Default 0. */
  weightDecay?: number;
  /** Epochs at which the lr drops ×0.1; default [60, 80]. Ignored with `cos`. */
  schedule?: number[];
  /** Cosine decay, set once an epoch; default false. */
  cos?: boolean;
  /** Seeds the fc initialisation and the sample order; default 0. */
  seed?: number;
  /** Stop after this many optimiser steps in all (smoke tests); default unlimited. */
  maxSteps?: number;
}

/** Accuracy of one pass, in percent. */
export interface Accuracy {
  top1: number;
  top5: number;
  /** Mean cross-entropy. */
  loss: number;
}

/** What one epoch did. */
export interface EpochMetrics {
  epoch: number;
  lr: number;
  /** Mean training loss over the epoch's steps. */
  trainLoss: number;
  /** Training top-1 of the epoch's batches (as main_lincls prints), percent. */
  trainTop1: number;
  val: Accuracy;
  /** Wall seconds of the epoch (training and validation). */
  seconds: number;
  /** Optimiser steps taken in all, this epoch's included. */
  steps: number;
}

/** The trainable part: `fc.weight` (C × D) and `fc.bias` (C). */
export class LinearHead {
  readonly weight: Tensor;
  readonly bias: Tensor;
  constructor(weight: Tensor, bias: Tensor) {
    this.weight = keep(weight).requiresGrad_(true);
    this.bias = keep(bias).requiresGrad_(true);
  }

  /**
   * main_lincls.py's init: weight ~ N(0, 0.01), bias 0. The normals come from the seeded project Rng so that
   * runs repeat on any machine.
   */
  static init(inFeatures: number, numClasses: number, seed = 0): LinearHead {
    const rng = new Rng(seed, 'lincls-fc');
    const w = new Float32Array(inFeatures * numClasses);
    for (let i = 0; i < w.length; i++) w[i] = 0.01 * rng.normal();
    return new LinearHead(tensor(w, { shape: [numClasses, inFeatures] }), zeros([numClasses]));
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }

  get numClasses(): number {
    return this.weight.shape[0]!;
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}

/** Fills in main_lincls.py's defaults. */
export function resolveSchedule(s: LinearSchedule): Required<Omit<LinearSchedule, 'maxSteps'>> & { maxSteps: number } {
  return {
    epochs: s.epochs ?? 100,
    lr: s.lr ?? 30,
    batchSize: s.batchSize ?? 256,
    momentum: s.momentum ?? 0.9,
    weightDecay: s.weightDecay ?? 0,
    schedule: s.schedule ?? [60, 80],
    cos: s.cos ?? false,
    seed: s.seed ?? 0,
    maxSteps: s.maxSteps ?? Infinity,
  };
}

/** The lr of an epoch (main_lincls's adjust_learning_rate: set once at the start of each epoch). */
export function linclsLr(s: ResolvedSchedule, epoch: number): number {
  return lrAt({ baseLr: s.lr, epochs: s.epochs, cos: s.cos, milestones: s.schedule }, epoch);
}

/** The SGD of the protocol over the head's two tensors. */
export function linclsOptimizer(head: LinearHead, s: ResolvedSchedule): SGD {
  return new SGD([head.weight, head.bias], { lr: s.lr, momentum: s.momentum, weightDecay: s.weightDecay });
}

/** Where the lr of a run came from and what to try instead, for {@link DivergedError}'s message. */
export interface LrOrigin {
  /** E.g. '--lr', "the cifar preset's default". */
  from: string;
  /** A value to suggest; default a tenth of the lr. */
  suggest?: number;
}

/**
 * Thrown when training diverges: the loss stops being finite, or an epoch's mean training loss exceeds
 * {@link divergenceLimit}. The run is stopped rather than left to finish at chance accuracy.
 */
export class DivergedError extends Error {
  constructor(
    readonly epoch: number,
    readonly step: number,
    readonly lr: number,
    readonly reason: string,
    origin: LrOrigin = { from: 'the lr option' },
  ) {
    const suggest =
      origin.suggest !== undefined && origin.suggest < lr ? origin.suggest : Number((lr / 10).toPrecision(2));
    super(
      `linear classification diverged at epoch ${epoch + 1}, step ${step}: ${reason}. ` +
        `The lr is too large for this backbone's features: --lr ${lr} (from ${origin.from}); try --lr ${suggest}.`,
    );
    this.name = 'DivergedError';
  }
}

/**
 * The largest epoch-mean training loss a run may have before it counts as diverged: ten times ln(classes),
 * the loss of the uniform guess the N(0, 0.01) init starts from. Learning takes the loss down from there; an
 * epoch that averages ten times chance level means steps that overshoot, an lr far too large for the features'
 * scale. Measured on a 5-epoch cifar-preset encoder (5,000 images, 30 epochs): lr 30 averages 1864 in epoch 1,
 * lr 3 145 and lr 1 25.5 (the limit at 10 classes is 23.0), and the step drops rescue lr 3 and 1 only to 31% top-1
 * against 35% for lr 0.1, which stays below 2.1. Stopping there costs nothing worth having and names the fix;
 * ImageNet's 1000 classes allow 69.
 */
export function divergenceLimit(numClasses: number): number {
  return 10 * Math.log(Math.max(2, numClasses));
}

/**
 * One supervised SGD step: cross-entropy of `model`'s logits for x against labels y (B, int64), backward, one
 * optimiser step (skipped on a non-finite loss). `model` is the linear head on features (B × D) in `lincls`, the
 * whole network on images in fine-tuning. Returns [loss, correct top-1 count].
 */
export function linclsStep(model: { forward(x: Tensor): Tensor }, opt: SGD, x: Tensor, y: Tensor): [number, number] {
  const [loss, correct] = tidy(() => {
    const logits = model.forward(x);
    const l = F.crossEntropy(logits, y);
    opt.zeroGrad();
    l.backward();
    const c = noGrad(() => logits.argmax(1).eq(y).sum());
    return [l.detach(), c];
  });
  const lv = loss.item();
  const cv = correct.item();
  loss.dispose();
  correct.dispose();
  if (Number.isFinite(lv)) opt.step();
  return [lv, cv];
}

/** Running top-1/top-5/loss counts over batches of logits. */
export class AccuracyMeter {
  private n = 0;
  private c1 = 0;
  private c5 = 0;
  private lossSum = 0;

  /** Adds a batch of logits (B × C) and int64 labels (B). */
  add(logits: Tensor, labels: Tensor): void {
    const [c1, c5, l] = noGrad(() =>
      tidy(() => {
        const k = Math.min(5, logits.shape[1]!);
        const top = logits.topk(k, 1).indices;
        const hit = top.eq(labels.view(-1, 1));
        return [
          hit.narrow(1, 0, 1).sum().item(),
          hit.sum({ dim: 1 }).gt(0).sum().item(),
          F.crossEntropy(logits, labels, { reduction: 'sum' }).item(),
        ];
      }),
    );
    this.n += labels.shape[0]!;
    this.c1 += c1;
    this.c5 += c5;
    this.lossSum += l;
  }

  result(): Accuracy {
    return {
      top1: this.n ? (100 * this.c1) / this.n : NaN,
      top5: this.n ? (100 * this.c5) / this.n : NaN,
      loss: this.n ? this.lossSum / this.n : NaN,
    };
  }
}

/** Accuracy of the head on fixed features (in chunks). */
export function evaluateHead(head: LinearHead, x: Tensor, y: Tensor, chunk = 4096): Accuracy {
  const m = new AccuracyMeter();
  const n = x.shape[0]!;
  for (let s = 0; s < n; s += chunk) {
    tidy(() => {
      const len = Math.min(chunk, n - s);
      m.add(
        noGrad(() => head.forward(x.narrow(0, s, len))),
        y.narrow(0, s, len),
      );
    });
  }
  return m.result();
}

/** The sample order of an epoch: a permutation from (seed, epoch), so runs repeat and tests can replay it. */
export function epochOrder(seed: number, epoch: number, n: number): Int32Array {
  return new Rng(seed, 'lincls-order', epoch).permutation(n);
}

/** One training batch of the linear protocol. */
export interface LinearBatch {
  /** The frozen backbone's features (B × D); called inside the step's tidy scope. */
  features(): Tensor;
  /** int64 labels (B). */
  labels: Tensor;
}

/** The linear protocol's part of the loop: the head is the model, each epoch's result its metrics. */
export interface LinearLoop {
  config: ResolvedSchedule;
  model: LinearHead;
  optimizer: SGD;
  output: undefined;
  metrics: EpochMetrics;
}

/** An observer of the linear protocol (epochEnd's `metrics` is the epoch's {@link EpochMetrics}). */
export type LinearObserver = LoopObserver<LinearLoop>;

/** The schedule with main_lincls.py's defaults filled in (see {@link resolveSchedule}). */
export type ResolvedSchedule = ReturnType<typeof resolveSchedule>;

/**
 * The linear protocol's step: one SGD step a batch, the epoch's training loss and top-1 counted as it goes; at
 * the epoch's end validation on fixed features and the divergence checks, before any observer reports or saves.
 */
class LinearStep implements LoopStep<LinearLoop, LinearBatch> {
  readonly history: EpochMetrics[] = [];
  private lossSum = 0;
  private correct = 0;
  private seen = 0;
  private batches = 0;
  private from = 0;

  constructor(
    private readonly valX: Tensor,
    private readonly valY: Tensor,
    private readonly lrOrigin?: LrOrigin,
  ) {}

  epochStart(): void {
    this.lossSum = 0;
    this.correct = 0;
    this.seen = 0;
    this.batches = 0;
    this.from = performance.now();
  }

  train(ctx: LoopContext<LinearLoop>, b: LinearBatch): StepOutput<undefined> {
    const [loss, correct] = linclsStep(ctx.model, ctx.optimizer, b.features(), b.labels);
    const n = b.labels.shape[0]!;
    this.lossSum += loss;
    this.correct += correct;
    this.seen += n;
    this.batches++;
    return { loss, samples: n };
  }

  diverged(_ctx: LoopContext<LinearLoop>, _loss: number, at: StepAt, lr: number): Error {
    return new DivergedError(at.epoch, at.batchIndex, lr, 'the loss is NaN/Inf', this.lrOrigin);
  }

  epochEnd(ctx: LoopContext<LinearLoop>, epoch: number, lr: number): EpochMetrics {
    const head = ctx.model;
    const nb = this.batches;
    const val = evaluateHead(head, this.valX, this.valY);
    if (!Number.isFinite(val.loss) && !Number.isNaN(val.top1))
      throw new DivergedError(epoch, nb, lr, 'the validation loss is NaN/Inf', this.lrOrigin);
    const trainLoss = this.lossSum / Math.max(1, nb);
    const limit = divergenceLimit(head.numClasses);
    if (nb && trainLoss > limit) {
      throw new DivergedError(
        epoch,
        nb,
        lr,
        `the epoch's mean training loss is ${trainLoss.toPrecision(4)}, above ${limit.toPrecision(3)} (10 × ln ${head.numClasses} classes, ten times a uniform guess)`,
        this.lrOrigin,
      );
    }
    const m: EpochMetrics = {
      epoch,
      lr,
      trainLoss,
      trainTop1: (100 * this.correct) / Math.max(1, this.seen),
      val,
      seconds: (performance.now() - this.from) / 1000,
      steps: ctx.state.step,
    };
    this.history.push(m);
    return m;
  }
}

export interface LinearEpochsOpts {
  /** The optimiser over `head` (its lr is set at the start of every epoch). */
  opt: SGD;
  /** Batches an epoch (the last may be smaller). */
  batchesPerEpoch: number;
  /** The epoch to start from (a resumed run); default 0. */
  startEpoch?: number;
  /** Optimiser steps already taken (a resumed run); counts towards `maxSteps`. Default 0. */
  startSteps?: number;
  /** Called in order at the loop's fixed points; epochEnd gets each epoch's metrics (may throw to stop the run). */
  observers?: LinearObserver[];
  /** Where the lr came from, for the divergence message. */
  lrOrigin?: LrOrigin;
  /** Lines for the person watching (the context's `log`). */
  log?: (line: string) => void;
}

/**
 * main_lincls.py's epoch loop, whatever the batches are made of (augmented images through the frozen
 * backbone, or cached features), run by the training {@link Loop}: lr set once an epoch, one SGD step a batch,
 * validation on fixed features after each epoch, {@link DivergedError} on a non-finite loss or an epoch-mean
 * loss above {@link divergenceLimit} (checked before the observers report or save the epoch). Returns the
 * epochs this call ran and the total steps.
 */
export async function runLinearEpochs(
  head: LinearHead,
  s: ResolvedSchedule,
  batches: (epoch: number) => Iterable<LinearBatch> | AsyncIterable<LinearBatch>,
  valX: Tensor,
  valY: Tensor,
  o: LinearEpochsOpts,
): Promise<{ history: EpochMetrics[]; steps: number }> {
  const step = new LinearStep(valX, valY, o.lrOrigin);
  const bpe = o.batchesPerEpoch;
  const r = await new Loop(step, o.observers ?? []).run((epoch) => batches(epoch), {
    config: s,
    model: head,
    optimizer: o.opt,
    epochs: s.epochs,
    batchesPerEpoch: bpe,
    totalSteps: Math.min(s.maxSteps, s.epochs * bpe),
    state: { epoch: o.startEpoch ?? 0, batch: 0, step: o.startSteps ?? 0 },
    lr: (epoch) => linclsLr(s, epoch),
    ...(o.log ? { log: o.log } : {}),
  });
  return { history: step.history, steps: r.state.step };
}

export interface LinearFeatureOpts extends LinearSchedule {
  /** Classes; default max label + 1. */
  numClasses?: number;
  /** Start from this head instead of N(0, 0.01) (taken over: disposed by the caller via the result). */
  init?: LinearHead;
  /** Called after each epoch with the head being trained (may throw to stop the run). */
  onEpoch?: (m: EpochMetrics, head: LinearHead) => void;
  /** More observers of the loop, after `onEpoch` (e.g. the classifier's checkpoints). */
  observers?: LinearObserver[];
  /** Where the lr came from, for the divergence message. */
  lrOrigin?: LrOrigin;
  /** Lines for the person watching (the loop context's `log`); default none. */
  log?: (line: string) => void;
}

export interface LinearFeatureResult {
  /** The trained head (dispose when done). */
  head: LinearHead;
  history: EpochMetrics[];
  /** The epoch with the best validation top-1 (first such). */
  best: EpochMetrics;
  last: EpochMetrics;
  steps: number;
}

/**
 * The linear-classification protocol on cached features: the frozen backbone's features of each training
 * image are computed once (without augmentation) and the fc is trained on them with main_lincls.py's
 * optimiser and schedule (drop_last false, reshuffled every epoch). Many times faster than the image
 * protocol; it differs only in that training sees no RandomResizedCrop/flip.
 *
 * @param trainX N × D float32 features (not normalised: the fc sees what main_lincls's fc sees).
 * @param trainY N int64 labels.
 */
export async function trainLinearOnFeatures(
  trainX: Tensor,
  trainY: Tensor,
  valX: Tensor,
  valY: Tensor,
  o: LinearFeatureOpts = {},
): Promise<LinearFeatureResult> {
  const s = resolveSchedule(o);
  const n = trainX.shape[0]!;
  const C = o.numClasses ?? Math.max(trainY.max().item(), valY.max().item()) + 1;
  const head = o.init ?? LinearHead.init(trainX.shape[1]!, C, s.seed);
  const opt = linclsOptimizer(head, s);
  const yTrain = trainY.long();
  const yVal = valY.long();
  function* batches(epoch: number): Iterable<LinearBatch> {
    const order = epochOrder(s.seed, epoch, n);
    for (let b = 0; b < n; b += s.batchSize) {
      const idx = tensor(order.subarray(b, Math.min(n, b + s.batchSize)), { dtype: 'int32' }).long();
      try {
        const labels = yTrain.indexSelect(0, idx);
        try {
          yield { features: () => trainX.indexSelect(0, idx), labels };
        } finally {
          labels.dispose();
        }
      } finally {
        idx.dispose();
      }
    }
  }
  try {
    const onEpoch = o.onEpoch;
    const each: LinearObserver = {
      epochEnd: (c: LoopContext<LinearLoop>, e: EpochEvent<EpochMetrics>) => onEpoch?.(e.metrics, c.model),
    };
    const observers = [...(onEpoch ? [each] : []), ...(o.observers ?? [])];
    const { history, steps } = await runLinearEpochs(head, s, batches, valX, yVal, {
      opt,
      batchesPerEpoch: Math.ceil(n / s.batchSize),
      observers,
      lrOrigin: o.lrOrigin,
      log: o.log,
    });
    if (!history.length) throw new Error('trainLinearOnFeatures: no epoch ran (epochs or maxSteps is 0)');
    return { head, history, best: bestOf(history), last: history[history.length - 1]!, steps };
  } catch (e) {
    if (!o.init) head.dispose();
    throw e;
  } finally {
    opt.dispose();
    if (yTrain !== trainY) yTrain.dispose();
    if (yVal !== valY) yVal.dispose();
  }
}

/** The first epoch with the highest validation top-1. */
export function bestOf(h: EpochMetrics[]): EpochMetrics {
  return h.reduce((a, b) => (b.val.top1 > a.val.top1 ? b : a));
}

/** An uninitialised C × D head (filled by the caller), e.g. to load a checkpoint's fc. */
export function emptyHead(inFeatures: number, numClasses: number): LinearHead {
  return new LinearHead(empty([numClasses, inFeatures]), empty([numClasses]));
}
