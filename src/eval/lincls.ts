// main_lincls.py's linear-classification protocol on a frozen encoder, over image datasets: the image protocol
// (fresh augmentation every epoch) or the cached-feature protocol (features extracted once), the sanity check,
// per-epoch top-1/top-5, the best checkpoint, validation-only runs, and divergence detection.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, noGrad, tensor, tidy } from '../torch/index.js';
import { Loader, Rng, preset, type AugmentSpec, type ImageDataset } from '../data/index.js';
import { saveSafetensors } from '../io/safetensors.js';
import type { Linear } from '../nn/index.js';
import { checkBackboneUnchanged, snapshotBackbone, type Encoder } from './encoder.js';
import { extractFeatures } from './features.js';
import { randomPadCrop } from './pad-crop.js';
import {
  AccuracyMeter, DivergedError, LinearHead, bestOf, evaluateHead as evaluateOnFeatures, linclsLr, linclsOptimizer, linclsStep, resolveSchedule, trainLinearOnFeatures,
  type Accuracy, type EpochMetrics, type LinearSchedule,
} from './linear-probe.js';

/** Which protocol a run followed. */
export type LinclsProtocol = 'images' | 'cached-features' | 'evaluate';

export interface LinearProbeOpts extends LinearSchedule {
  /**
   * Train on features extracted once with the validation transform (no augmentation): many times faster,
   * usually within a point or two of the image protocol. Default false (the image protocol of main_lincls.py).
   */
  cacheFeatures?: boolean;
  /** Validation only, with the encoder's own `fc` as the classifier (a checkpoint written by this protocol). */
  evaluate?: boolean;
  /** Where `checkpoint.safetensors` (last) and `model_best.safetensors` go; default: not saved. */
  outDir?: string;
  /** Train on a seeded random subset of this many training samples; default all. */
  trainSubset?: number;
  /** Images per forward when extracting features; default `batchSize`. */
  featureBatchSize?: number;
  /** Progress lines (stderr in the CLI). */
  onLog?: (line: string) => void;
  /** Called after each epoch. */
  onEpoch?: (m: EpochMetrics) => void;
}

export interface LinearProbeResult {
  protocol: LinclsProtocol;
  arch: string;
  numClasses: number;
  featureDim: number;
  trainSamples: number;
  valSamples: number;
  epochs: number;
  steps: number;
  /** Best validation epoch (null with `evaluate`). */
  best: { epoch: number; top1: number; top5: number } | null;
  /** The last validation. */
  last: Accuracy;
  history: EpochMetrics[];
  checkpoint: string | null;
  bestCheckpoint: string | null;
  seconds: number;
}

/** Training transform of the image protocol: pad-crop + flip for 32-px inputs, RandomResizedCrop + flip otherwise. */
function trainSpec(encoder: Encoder): { spec: AugmentSpec; padCrop: boolean } {
  const pre = encoder.preprocess();
  if (pre.augment === 'cifar-eval') return { spec: { ...preset('cifar-eval', pre.augmentOpts), flip: 0.5 }, padCrop: true };
  return { spec: preset('lincls-train', pre.augmentOpts), padCrop: false };
}

function labelled(ds: ImageDataset, what: string): Int32Array {
  if (!ds.labels) throw new Error(`linear classification needs labels, but the ${what} data has none (${ds.description})`);
  return ds.labels;
}

/** A seeded subset of `n` samples (in dataset order). */
function subset(ds: ImageDataset, n: number | undefined, seed: number): ImageDataset {
  if (n === undefined || n >= ds.length) return ds;
  if (!(n >= 1)) throw new RangeError(`trainSubset must be ≥ 1, got ${n}`);
  const idx = new Rng(seed, 'lincls-subset').permutation(ds.length).slice(0, n).sort();
  return ds.select(idx);
}

/** Writes backbone + classifier in torchvision layout (loadable by loadEncoder and torchvision). */
function saveClassifier(path: string, encoder: Encoder, head: LinearHead, info: Record<string, unknown>): void {
  const sd = new Map<string, Tensor>();
  for (const [k, t] of encoder.model.stateDict()) if (!k.startsWith('fc.')) sd.set(k, t);
  sd.set('fc.weight', head.weight.detach());
  sd.set('fc.bias', head.bias.detach());
  const i = encoder.info;
  const moco = { arch: i.arch, cifarStem: i.cifarStem, width: i.width, imageSize: i.imageSize, preset: i.preset };
  saveSafetensors(path, sd, { moco: JSON.stringify(moco), lincls: JSON.stringify(info) });
  sd.get('fc.weight')!.dispose();
  sd.get('fc.bias')!.dispose();
}

/**
 * Linear classification of a frozen encoder (main_lincls.py): a new fc (N(0, 0.01), bias 0) trained by SGD
 * (lr 30, momentum 0.9, wd 0, batch 256, 100 epochs, ×0.1 at 60 and 80, or `cos`) on the backbone's pooled
 * features, backbone in eval mode (BN running statistics) and never updated — checked after the first epoch.
 * Validation top-1/top-5 after every epoch; the best epoch's model is kept in `outDir`.
 *
 * Protocols: the default trains on freshly augmented images each epoch (RandomResizedCrop+flip, or for 32-px
 * encoders pad-4 random crop + flip) and validates on Resize+CenterCrop (32-px: the image as is), as
 * main_lincls.py; `cacheFeatures` trains on un-augmented features extracted once; `evaluate` only validates
 * the encoder's own fc.
 *
 * Throws {@link DivergedError} when the loss becomes NaN/Inf (lower the lr).
 */
export async function linearProbe(encoder: Encoder, train: ImageDataset, val: ImageDataset, o: LinearProbeOpts = {}): Promise<LinearProbeResult> {
  const t0 = performance.now();
  const s = resolveSchedule(o);
  const log = o.onLog ?? (() => undefined);
  const pre = encoder.preprocess();
  const fbs = o.featureBatchSize ?? s.batchSize;
  await val.prepare();
  labelled(val, 'validation');
  const featDim = encoder.info.featureDim;

  if (o.evaluate) {
    if (encoder.info.headKind !== 'fc') throw new Error(`--evaluate needs a linear-classification checkpoint (backbone + fc, as written by moco lincls --out); ${encoder.info.file} has head '${encoder.info.headKind}'`);
    const numClasses = encoder.info.headDim!;
    const fc = encoder.model.fc as Linear;
    const head = new LinearHead(fc.weight.detach(), (fc.bias ?? tensor(new Float32Array(numClasses))).detach());
    try {
      const vf = await extractFeatures((x) => encoder.backbone(x), val, { ...pre, normalize: false, batchSize: fbs });
      const m = new AccuracyMeter();
      tidy(() => m.add(noGrad(() => head.forward(vf.features)), vf.labels!));
      vf.features.dispose(); vf.labels?.dispose();
      const last = m.result();
      return { protocol: 'evaluate', arch: encoder.info.arch, numClasses, featureDim: featDim, trainSamples: 0, valSamples: val.length, epochs: 0, steps: 0, best: null, last, history: [], checkpoint: null, bestCheckpoint: null, seconds: (performance.now() - t0) / 1000 };
    } finally {
      head.dispose();
    }
  }

  const trainDs = subset(train, o.trainSubset, s.seed);
  await trainDs.prepare();
  const trainLabels = labelled(trainDs, 'training');
  const numClasses = train.classes?.length ?? Math.max(...trainLabels, ...labelled(val, 'validation')) + 1;
  if (o.outDir) mkdirSync(o.outDir, { recursive: true });
  const snapshot = snapshotBackbone(encoder.model);
  const protocol: LinclsProtocol = o.cacheFeatures ? 'cached-features' : 'images';
  const ckptPath = o.outDir ? join(o.outDir, 'checkpoint.safetensors') : null;
  const bestPath = o.outDir ? join(o.outDir, 'model_best.safetensors') : null;
  let bestTop1 = -Infinity;
  const config = { protocol, epochs: s.epochs, lr: s.lr, batchSize: s.batchSize, momentum: s.momentum, weightDecay: s.weightDecay, schedule: s.schedule, cos: s.cos, seed: s.seed, trainSamples: trainDs.length, source: encoder.info.file };
  const info = (m: EpochMetrics): Record<string, unknown> => ({ epoch: m.epoch, top1: m.val.top1, top5: m.val.top5, classes: train.classes, config });
  // The protocol's per-epoch bookkeeping: sanity check after epoch 1, best checkpoint, log line.
  const afterEpoch = (m: EpochMetrics, head: LinearHead): void => {
    if (m.epoch === 0) { checkBackboneUnchanged(encoder.model, snapshot); log('sanity check passed: backbone unchanged after epoch 1'); }
    log(`epoch ${m.epoch + 1}/${s.epochs}: lr ${m.lr.toPrecision(3)}, train loss ${m.trainLoss.toFixed(4)}, train top-1 ${m.trainTop1.toFixed(2)}, val top-1 ${m.val.top1.toFixed(2)}, top-5 ${m.val.top5.toFixed(2)} (${m.seconds.toFixed(1)} s)`);
    if (bestPath && m.val.top1 > bestTop1) saveClassifier(bestPath, encoder, head, info(m));
    bestTop1 = Math.max(bestTop1, m.val.top1);
    o.onEpoch?.(m);
  };

  try {
    log(`extracting validation features (${val.length} images)`);
    // The backbone is frozen and the validation transform deterministic: its features are the same every epoch.
    const vf = await extractFeatures((x) => encoder.backbone(x), val, { ...pre, normalize: false, batchSize: fbs });
    let head: LinearHead;
    let history: EpochMetrics[];
    let steps: number;
    try {
      if (o.cacheFeatures) {
        log(`extracting training features once (${trainDs.length} images, no augmentation)`);
        const tf = await extractFeatures((x) => encoder.backbone(x), trainDs, { ...pre, normalize: false, batchSize: fbs });
        try {
          ({ head, history, steps } = trainLinearOnFeatures(tf.features, tf.labels!, vf.features, vf.labels!, { ...s, numClasses, onEpoch: afterEpoch }));
        } finally {
          tf.features.dispose(); tf.labels?.dispose();
        }
      } else {
        ({ head, history, steps } = await trainOnImages(encoder, trainDs, vf.features, vf.labels!, numClasses, s, afterEpoch));
      }
    } finally {
      vf.features.dispose(); vf.labels?.dispose();
    }
    try {
      const last = history[history.length - 1]!;
      if (ckptPath) saveClassifier(ckptPath, encoder, head, info(last));
      const b = bestOf(history);
      return {
        protocol, arch: encoder.info.arch, numClasses, featureDim: featDim, trainSamples: trainDs.length, valSamples: val.length,
        epochs: history.length, steps, best: { epoch: b.epoch, top1: b.val.top1, top5: b.val.top5 }, last: last.val, history,
        checkpoint: ckptPath, bestCheckpoint: bestPath, seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      head.dispose();
    }
  } finally {
    for (const t of snapshot.values()) t.dispose();
    if (trainDs !== train) trainDs.dispose();
  }
}

/** The image protocol's training loop: augmented batches, frozen features, one SGD step each. */
async function trainOnImages(encoder: Encoder, train: ImageDataset, valX: Tensor, valY: Tensor, numClasses: number,
  s: ReturnType<typeof resolveSchedule>, afterEpoch: (m: EpochMetrics, head: LinearHead) => void): Promise<{ head: LinearHead; history: EpochMetrics[]; steps: number }> {
  const { spec, padCrop } = trainSpec(encoder);
  const loader = new Loader(train, { batchSize: s.batchSize, shuffle: true, dropLast: false, seed: s.seed, augment: spec, twoCrops: false });
  const head = LinearHead.init(encoder.info.featureDim, numClasses, s.seed);
  const opt = linclsOptimizer(head, s);
  const history: EpochMetrics[] = [];
  let steps = 0;
  try {
    for (let epoch = 0; epoch < s.epochs && steps < s.maxSteps; epoch++) {
      const t0 = performance.now();
      const lr = linclsLr(s, epoch);
      opt.setLr(lr);
      let lossSum = 0, correct = 0, seen = 0, nb = 0;
      for await (const b of loader.epoch(epoch)) {
        if (steps >= s.maxSteps) { b.dispose(); break; }
        try {
          const [l, c] = tidy(() => {
            const x = padCrop ? randomPadCrop(b.views[0]!, new Rng(s.seed, 'lincls-padcrop', epoch, b.index), spec.mean, spec.std) : b.views[0]!;
            return linclsStep(head, opt, encoder.backbone(x), b.labels!);
          });
          if (!Number.isFinite(l)) throw new DivergedError(epoch, nb, lr);
          lossSum += l; correct += c; seen += b.indices.length; nb++; steps++;
        } finally {
          b.dispose();
        }
      }
      const val = evaluateOnFeatures(head, valX, valY);
      const m: EpochMetrics = { epoch, lr, trainLoss: lossSum / Math.max(1, nb), trainTop1: (100 * correct) / Math.max(1, seen), val, seconds: (performance.now() - t0) / 1000 };
      history.push(m);
      afterEpoch(m, head);
    }
  } catch (e) {
    head.dispose();
    throw e;
  } finally {
    opt.dispose();
  }
  if (!history.length) { head.dispose(); throw new Error('linear classification: no epoch ran (epochs or maxSteps is 0)'); }
  return { head, history, steps };
}
