// main_lincls.py's linear-classification protocol on a frozen encoder, over image datasets: the image protocol
// (fresh augmentation every epoch) or the cached-feature protocol (features extracted once), the sanity check,
// per-epoch top-1/top-5, the best checkpoint, validation-only runs, and divergence detection.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor, noGrad, tensor, tidy } from '../torch/index.js';
import { Loader, Rng, numClassesOf, preset, type AugmentSpec, type ImageDataset } from '../data/index.js';
import { loadSafetensors } from '../io/safetensors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { MOMENTUM_PREFIX, momentumFromTensors } from '../optim/index.js';
import { LINCLS_LR, LINCLS_V3 } from '../moco/index.js';
import { backboneTensors, type Encoder, type EncoderInfo } from './encoder.js';
import { extractFeatures } from './features.js';
import { randomPadCrop } from './pad-crop.js';
import type { EpochEvent } from '../loop/index.js';
import {
  AccuracyMeter,
  LinearHead,
  bestOf,
  linclsOptimizer,
  resolveSchedule,
  runLinearEpochs,
  trainLinearOnFeatures,
  type Accuracy,
  type EpochMetrics,
  type LinearBatch,
  type LinearObserver,
  type LinearSchedule,
  type LrOrigin,
  type ResolvedSchedule,
} from './linear-probe.js';
import {
  BackboneCheckObserver,
  ClassifierCheckpointObserver,
  EpochLogObserver,
  LinclsEventsObserver,
} from './observers/index.js';

/** Which protocol a run followed. */
export type LinclsProtocol = 'images' | 'cached-features' | 'evaluate';

export interface LinclsOpts extends LinearSchedule {
  /** How the caller names `lr` in messages (the CLI: '--lr'); default 'the lr option'. Unused without `lr`. */
  lrFrom?: string;
  /**
   * Train on features extracted once with the validation transform (no augmentation): many times faster,
   * usually within a point or two of the image protocol. Default false (the image protocol of main_lincls.py).
   */
  cacheFeatures?: boolean;
  /**
   * Validation only, with the encoder's own `fc` as the classifier (a checkpoint written by this protocol, or a
   * torchvision/main_lincls.py classifier); with `resume`, the classifier of that run on this encoder's backbone.
   * A pre-training checkpoint's projection head is refused, as is a classifier for another number of classes.
   */
  evaluate?: boolean;
  /**
   * Where `checkpoint.safetensors` (last; with the image protocol rewritten after every epoch, with the
   * optimiser state, so that a run can resume) and `model_best.safetensors` go, with TensorBoard event files
   * (lincls/* scalars an epoch, at its step count) and lincls.json (the result); default: not saved.
   */
  outDir?: string;
  /**
   * Continue an image-protocol run from its `checkpoint.safetensors` (or the `outDir` holding it): the fc,
   * the optimiser's momentum, the epoch, the step count, the best accuracy and the history are restored, and
   * the remaining epochs see the batches an uninterrupted run would have seen. Default: start afresh.
   */
  resume?: string;
  /** Train on a seeded random subset of this many training samples; default all. */
  trainSubset?: number;
  /** Images per forward when extracting features; default `batchSize`. */
  featureBatchSize?: number;
  /** Progress lines (stderr in the CLI). */
  onLog?: (line: string) => void;
  /** Called after each epoch. */
  onEpoch?: (m: EpochMetrics) => void;
}

export interface LinclsResult {
  protocol: LinclsProtocol;
  arch: string;
  numClasses: number;
  featureDim: number;
  trainSamples: number;
  valSamples: number;
  epochs: number;
  steps: number;
  /** The base lr trained with, and where it came from (null with `evaluate`). */
  lr: number | null;
  lrFrom: string | null;
  /** Best validation epoch (null with `evaluate`). */
  best: { epoch: number; top1: number; top5: number } | null;
  /** The last validation. */
  last: Accuracy;
  history: EpochMetrics[];
  checkpoint: string | null;
  bestCheckpoint: string | null;
  seconds: number;
}

/** What the linear protocol uses when not told: {@link linclsDefaults}. */
export interface LinclsDefaults {
  /** Base lr (MoCo v3: already scaled by batch / 256). */
  lr: number;
  /** Cosine decay instead of the ×0.1 steps. */
  cos: boolean;
  epochs: number;
  /** Where the values come from, for messages. */
  from: string;
}

/**
 * The linear protocol's lr, schedule and epochs when none is given. MoCo v3 encoders (a v3 checkpoint layout or
 * preset, or a ViT) get v3's protocol ({@link LINCLS_V3}: base 0.1 or 3 (ViT) × `batchSize` / 256, cosine, 90
 * epochs); the others main_lincls.py's 100 epochs with steps and the lr of their preset ({@link LINCLS_LR}), else
 * the CIFAR recipe's for a CIFAR-stem encoder, else main_lincls.py's 30 (ImageNet ResNet-50).
 */
export function linclsDefaults(
  info: Pick<EncoderInfo, 'preset' | 'cifarStem' | 'layout' | 'arch'>,
  batchSize: number,
): LinclsDefaults {
  const vit = info.arch.startsWith('vit');
  if (vit || info.layout.startsWith('mocov3') || info.preset?.startsWith('mocov3')) {
    const base = vit ? LINCLS_V3.lrViT : LINCLS_V3.lrResNet;
    return {
      lr: (base * batchSize) / 256,
      cos: true,
      epochs: LINCLS_V3.epochs,
      from: `MoCo v3's linear protocol for ${vit ? 'ViT' : 'ResNet'} encoders (${base} × batch ${batchSize} / 256)`,
    };
  }
  const v2 = { cos: false, epochs: 100 };
  if (info.preset && info.preset in LINCLS_LR)
    return {
      ...v2,
      lr: LINCLS_LR[info.preset as keyof typeof LINCLS_LR],
      from: `the default for the ${info.preset} preset's encoders`,
    };
  if (info.cifarStem) return { ...v2, lr: LINCLS_LR.cifar, from: 'the default for CIFAR-stem encoders' };
  return { ...v2, lr: LINCLS_LR.mocov2, from: "main_lincls.py's default for ImageNet encoders" };
}

/**
 * Training transform of the image protocol (also fine-tuning's): pad-4 random crop + flip for 32-px encoders
 * (`padCrop`: apply {@link randomPadCrop} to the loader's batch), RandomResizedCrop + flip otherwise.
 */
export function linclsTrainTransform(encoder: Encoder): { spec: AugmentSpec; padCrop: boolean } {
  const pre = encoder.preprocess();
  if (pre.augment === 'cifar-eval')
    return { spec: { ...preset('cifar-eval', pre.augmentOpts), flip: 0.5 }, padCrop: true };
  return { spec: preset('lincls-train', pre.augmentOpts), padCrop: false };
}

function labelled(ds: ImageDataset, what: string): Int32Array {
  if (!ds.labels)
    throw new Error(`linear classification needs labels, but the ${what} data has none (${ds.description})`);
  return ds.labels;
}

/** A seeded subset of `n` samples (in dataset order). */
function subset(ds: ImageDataset, n: number | undefined, seed: number): ImageDataset {
  if (n === undefined || n >= ds.length) return ds;
  if (!(n >= 1)) throw new RangeError(`trainSubset must be ≥ 1, got ${n}`);
  const idx = new Rng(seed, 'lincls-subset').permutation(ds.length).slice(0, n).sort();
  return ds.select(idx);
}

/** Where an image-protocol run stood at its last checkpoint. */
interface ResumePoint {
  head: LinearHead;
  momentum: Map<number, Tensor>;
  /** The next epoch to run. */
  epoch: number;
  steps: number;
  history: EpochMetrics[];
  file: string;
}

function readResumePoint(path: string, config: Record<string, unknown>): ResumePoint {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'checkpoint.safetensors') : path;
  if (!existsSync(file))
    throw new Error(
      `--resume: ${file} not found (give the checkpoint.safetensors or the --out folder of a moco lincls run)`,
    );
  const { tensors, metadata } = loadSafetensors(file);
  const free = (): void => {
    for (const t of tensors.values()) t.dispose();
  };
  const info = metadata.lincls
    ? (JSON.parse(metadata.lincls) as {
        epoch?: number;
        steps?: number;
        history?: EpochMetrics[];
        config?: Record<string, unknown>;
      })
    : null;
  const w = tensors.get('fc.weight'),
    b = tensors.get('fc.bias');
  if (!info?.config || info.steps === undefined || !info.history || !w || !b) {
    free();
    throw new Error(
      `--resume: ${file} is not a checkpoint of a moco lincls image-protocol run (no lincls state or fc)`,
    );
  }
  // Everything that decides which batches and updates come next must match; epochs and maxSteps may grow.
  for (const k of [
    'protocol',
    'lr',
    'batchSize',
    'momentum',
    'weightDecay',
    'schedule',
    'cos',
    'seed',
    'trainSamples',
  ]) {
    if (JSON.stringify(info.config[k]) !== JSON.stringify(config[k])) {
      free();
      throw new Error(
        `--resume: ${file} was written with ${k} = ${JSON.stringify(info.config[k])}, this run has ${JSON.stringify(config[k])}`,
      );
    }
  }
  const momentum = momentumFromTensors(tensors);
  for (const [k, t] of tensors) if (k !== 'fc.weight' && k !== 'fc.bias' && !k.startsWith(MOMENTUM_PREFIX)) t.dispose();
  return {
    head: new LinearHead(w, b),
    momentum,
    epoch: info.history.length,
    steps: info.steps,
    history: info.history,
    file,
  };
}

/** The encoder's own fc as a classifier, refusing a pre-training projection head. */
function ownClassifier(encoder: Encoder): LinearHead {
  const i = encoder.info;
  if (i.headKind !== 'fc' || i.headRole !== 'classifier') {
    const what =
      i.headKind === 'none'
        ? 'no classifier (no fc)'
        : `a pre-training projection head (${i.headKind === 'mlp' ? 'MLP' : 'MoCo fc'}, ${i.headDim}-d), not a trained classifier`;
    throw new Error(
      `--evaluate: ${i.file} has ${what}. Pass the model_best.safetensors or checkpoint.safetensors that moco lincls --out DIR wrote ` +
        `(--pretrained DIR/model_best.safetensors), or --resume DIR with this --pretrained; to train a classifier on this encoder, drop --evaluate`,
    );
  }
  const fc = encoder.headLinear();
  return new LinearHead(fc.weight.detach(), (fc.bias ?? tensor(new Float32Array(i.headDim!))).detach());
}

/**
 * The fc of a moco lincls run (its checkpoint.safetensors, or the folder holding it), after checking that it
 * was trained on this encoder's backbone: main_lincls.py's `--resume … --evaluate`.
 */
function resumedClassifier(path: string, encoder: Encoder): LinearHead {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'checkpoint.safetensors') : path;
  if (!existsSync(file))
    throw new Error(
      `--resume: ${file} not found (give the checkpoint.safetensors, model_best.safetensors or the --out folder of a moco lincls run)`,
    );
  const { tensors, metadata } = loadSafetensors(file);
  const w = tensors.get('fc.weight'),
    b = tensors.get('fc.bias');
  try {
    if (metadata.lincls === undefined || !w || !b)
      throw new Error(`--resume: ${file} is not a checkpoint of a moco lincls run (no lincls state or fc)`);
    const mine = backboneTensors(encoder.model);
    const differ = [...mine]
      .filter(([k, t]) => {
        const u = tensors.get(k);
        return (
          !u ||
          !tidy(
            () =>
              u.shape.length === t.shape.length &&
              u.shape.every((d, j) => d === t.shape[j]) &&
              u.eq(t).all().item() === 1,
          )
        );
      })
      .map(([k]) => k);
    if (differ.length) {
      throw new Error(
        `--evaluate --resume: ${file} was trained on another backbone than --pretrained ${encoder.info.file} ` +
          `(${differ.slice(0, 3).join(', ')}${differ.length > 3 ? `, … ${differ.length} in all` : ''} differ); pass the --pretrained that run was trained on`,
      );
    }
    return new LinearHead(w.detach(), b.detach());
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/**
 * Linear classification of a frozen encoder (main_lincls.py): a new fc (N(0, 0.01), bias 0) trained by SGD
 * (lr 30 for ImageNet encoders, momentum 0.9, wd 0, batch 256, 100 epochs, ×0.1 at 60 and 80, or `cos`) on
 * the backbone's pooled features, backbone in eval mode (BN running statistics) and never updated — checked after the first epoch.
 * Validation top-1/top-5 after every epoch; the best epoch's model is kept in `outDir`.
 *
 * Protocols: the default trains on freshly augmented images each epoch (RandomResizedCrop+flip, or for 32-px
 * encoders pad-4 random crop + flip) and validates on Resize+CenterCrop (32-px: the image as is), as
 * main_lincls.py; `cacheFeatures` trains on un-augmented features extracted once; `evaluate` only validates
 * the encoder's own fc.
 *
 * The lr, schedule and epochs default to {@link linclsDefaults} (lr 30 only for ImageNet v1/v2 encoders; MoCo v3's
 * protocol for v3 encoders). Throws {@link DivergedError}
 * when the loss becomes NaN/Inf or an epoch's mean exceeds ten times chance level (lower the lr).
 */
export async function lincls(
  encoder: Encoder,
  train: ImageDataset,
  val: ImageDataset,
  o: LinclsOpts = {},
): Promise<LinclsResult> {
  const t0 = performance.now();
  const byDefault = linclsDefaults(encoder.info, o.batchSize ?? resolveSchedule({}).batchSize);
  const s = resolveSchedule({
    ...o,
    lr: o.lr ?? byDefault.lr,
    cos: o.cos ?? byDefault.cos,
    epochs: o.epochs ?? byDefault.epochs,
  });
  const lrOrigin: LrOrigin =
    o.lr === undefined ? { from: byDefault.from } : { from: o.lrFrom ?? 'the lr option', suggest: byDefault.lr };
  const log = o.onLog ?? (() => undefined);
  const pre = encoder.preprocess();
  const fbs = o.featureBatchSize ?? s.batchSize;
  await val.prepare();
  labelled(val, 'validation');
  const featDim = encoder.info.featureDim;

  if (o.evaluate) {
    const head = o.resume ? resumedClassifier(o.resume, encoder) : ownClassifier(encoder);
    try {
      const numClasses = head.numClasses;
      // Without class names, labels above the classifier's outputs are the only sure sign of a mismatch.
      labelled(val, 'validation');
      const classes = numClassesOf(val);
      if (val.classes ? classes !== numClasses : classes > numClasses) {
        throw new Error(
          `--evaluate: the classifier of ${o.resume ?? encoder.info.file} has ${numClasses} outputs but the data has ${classes} classes; ` +
            'evaluate a moco lincls --out checkpoint trained on this data',
        );
      }
      const vf = await extractFeatures((x) => encoder.backbone(x), val, { ...pre, normalize: false, batchSize: fbs });
      const m = new AccuracyMeter();
      tidy(() =>
        m.add(
          noGrad(() => head.forward(vf.features)),
          vf.labels!,
        ),
      );
      vf.features.dispose();
      vf.labels?.dispose();
      const last = m.result();
      return {
        protocol: 'evaluate',
        arch: encoder.info.arch,
        numClasses,
        featureDim: featDim,
        trainSamples: 0,
        valSamples: val.length,
        epochs: 0,
        steps: 0,
        lr: null,
        lrFrom: null,
        best: null,
        last,
        history: [],
        checkpoint: null,
        bestCheckpoint: null,
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      head.dispose();
    }
  }

  if (o.resume && o.cacheFeatures)
    throw new Error(
      '--resume applies to the image protocol; the cached-feature protocol (--cache-features) reruns in seconds',
    );
  const trainDs = subset(train, o.trainSubset, s.seed);
  await trainDs.prepare();
  labelled(trainDs, 'training');
  labelled(val, 'validation');
  const numClasses = train.classes?.length ?? numClassesOf(trainDs, val);
  if (o.outDir) mkdirSync(o.outDir, { recursive: true });
  const protocol: LinclsProtocol = o.cacheFeatures ? 'cached-features' : 'images';
  const ckptPath = o.outDir ? join(o.outDir, 'checkpoint.safetensors') : null;
  const bestPath = o.outDir ? join(o.outDir, 'model_best.safetensors') : null;
  const config = {
    protocol,
    epochs: s.epochs,
    lr: s.lr,
    batchSize: s.batchSize,
    momentum: s.momentum,
    weightDecay: s.weightDecay,
    schedule: s.schedule,
    cos: s.cos,
    seed: s.seed,
    trainSamples: trainDs.length,
    source: encoder.info.file,
  };
  const resume = o.resume ? readResumePoint(o.resume, config) : null;
  if (resume) log(`resuming from ${resume.file}: epoch ${resume.epoch + 1}, ${resume.steps} steps done`);
  const info = (m: EpochMetrics, history?: EpochMetrics[]): Record<string, unknown> => ({
    epoch: m.epoch,
    top1: m.val.top1,
    top5: m.val.top5,
    classes: train.classes,
    config,
    steps: m.steps,
    ...(history ? { history } : {}),
  });
  const check = new BackboneCheckObserver(encoder.model);
  const events = o.outDir ? new LinclsEventsObserver(o.outDir, resume?.steps) : null;
  // In this order: the sanity check before anything reports or saves the epoch, the best checkpoint before the
  // caller hears of it.
  const observers: LinearObserver[] = [
    check,
    new EpochLogObserver(),
    new ClassifierCheckpointObserver({
      encoder,
      bestPath,
      lastPath: ckptPath,
      lastEvery: o.cacheFeatures ? 'end' : 'epoch',
      info,
      history: resume?.history,
    }),
    ...(events ? [events] : []),
    ...(o.onEpoch ? [{ epochEnd: (_ctx: unknown, e: EpochEvent<EpochMetrics>): void => o.onEpoch!(e.metrics) }] : []),
  ];

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
        const tf = await extractFeatures((x) => encoder.backbone(x), trainDs, {
          ...pre,
          normalize: false,
          batchSize: fbs,
        });
        try {
          ({ head, history, steps } = await trainLinearOnFeatures(tf.features, tf.labels!, vf.features, vf.labels!, {
            ...s,
            numClasses,
            observers,
            lrOrigin,
            log,
          }));
        } finally {
          tf.features.dispose();
          tf.labels?.dispose();
        }
      } else {
        ({ head, history, steps } = await trainOnImages(
          encoder,
          trainDs,
          vf.features,
          vf.labels!,
          numClasses,
          s,
          resume,
          lrOrigin,
          observers,
          log,
        ));
      }
    } finally {
      vf.features.dispose();
      vf.labels?.dispose();
    }
    try {
      const last = history[history.length - 1]!;
      const b = bestOf(history);
      const result: LinclsResult = {
        protocol,
        arch: encoder.info.arch,
        numClasses,
        featureDim: featDim,
        trainSamples: trainDs.length,
        valSamples: val.length,
        epochs: history.length,
        steps,
        lr: s.lr,
        lrFrom: lrOrigin.from,
        best: { epoch: b.epoch, top1: b.val.top1, top5: b.val.top5 },
        last: last.val,
        history,
        checkpoint: ckptPath,
        bestCheckpoint: bestPath,
        seconds: (performance.now() - t0) / 1000,
      };
      // What `moco report` shows as the linear top-1 of the run directory this folder sits in.
      if (o.outDir) writeTextAtomic(join(o.outDir, 'lincls.json'), `${JSON.stringify(result, null, 2)}\n`);
      return result;
    } finally {
      head.dispose();
    }
  } finally {
    // The loop closes them; a run that failed before it started has them closed here (a second close is a no-op).
    check.release();
    events?.close();
    if (trainDs !== train) trainDs.dispose();
  }
}

/**
 * The image protocol's training: augmented batches through the frozen backbone, one SGD step each, run by
 * runLinearEpochs; `history` includes a resumed run's earlier epochs.
 */
async function trainOnImages(
  encoder: Encoder,
  train: ImageDataset,
  valX: Tensor,
  valY: Tensor,
  numClasses: number,
  s: ResolvedSchedule,
  resume: ResumePoint | null,
  lrOrigin: LrOrigin,
  observers: LinearObserver[],
  log: (line: string) => void,
): Promise<{ head: LinearHead; history: EpochMetrics[]; steps: number }> {
  const { spec, padCrop } = linclsTrainTransform(encoder);
  // Image files are decoded by worker threads: the backbone's forward pass blocks this thread's event loop.
  const loader = new Loader(train, {
    batchSize: s.batchSize,
    shuffle: true,
    dropLast: false,
    seed: s.seed,
    augment: spec,
    twoCrops: false,
    fileWorkers: 2,
  });
  const head = resume?.head ?? LinearHead.init(encoder.info.featureDim, numClasses, s.seed);
  const opt = linclsOptimizer(head, s);
  if (resume) {
    opt.loadStateDict({ buffers: resume.momentum, groups: opt.stateDict().groups });
    for (const t of resume.momentum.values()) t.dispose();
  }
  async function* batches(epoch: number): AsyncIterable<LinearBatch> {
    for await (const b of loader.epoch(epoch)) {
      try {
        const x = b.views[0]!;
        yield {
          features: () =>
            encoder.backbone(
              padCrop ? randomPadCrop(x, new Rng(s.seed, 'lincls-padcrop', epoch, b.index), spec.mean, spec.std) : x,
            ),
          labels: b.labels!,
        };
      } finally {
        b.dispose();
      }
    }
  }
  try {
    const r = await runLinearEpochs(head, s, batches, valX, valY, {
      opt,
      batchesPerEpoch: Math.ceil(train.length / s.batchSize),
      startEpoch: resume?.epoch ?? 0,
      startSteps: resume?.steps ?? 0,
      lrOrigin,
      observers,
      log,
    });
    if (!r.history.length) throw new Error('linear classification: no epoch ran (epochs or maxSteps is 0)');
    return { head, history: [...(resume?.history ?? []), ...r.history], steps: r.steps };
  } catch (e) {
    head.dispose();
    throw e;
  } finally {
    opt.dispose();
    await loader.close();
  }
}
