// A frozen, inference-only encoder loaded from any checkpoint this project meets: our pre-training runs (a
// safetensors file or its run directory), official MoCo v1/v2/v3 `.pth.tar` (ResNet or ViT), torchvision `.pth`,
// and our own linear-classification checkpoints. The architecture comes from the file's metadata when present,
// else from the weight shapes (models/resnet-shape.ts).
import { createHash } from 'node:crypto';
import { noGrad, tidy, type Tensor } from '../torch/index.js';
import { Linear, type Module } from '../nn/index.js';
import { ResNet, VisionTransformer, createModel, createViT, projectionHead } from '../models/index.js';
import { loadPretrained, type CheckpointHead, type ImportedWeights, type WeightsLayout } from '../io/pretrained.js';
import { loadCheckpointFrom } from '../io/run-dir.js';
import { inferResNet } from '../models/resnet-shape.js';
import { regionDim, regionFeatures, type RegionOpts } from './regions.js';
import { stemPreprocessing, type Preprocessing } from '../data/eval-transform.js';
import { CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD, type PresetName, type PresetOpts } from '../data/index.js';

/**
 * Which output of the encoder a caller wants: pooled backbone features, the projection head's output, or the
 * layout-keeping region descriptor of `regions.ts` (global + banded averages of the last map).
 */
export type FeatureKind = 'backbone' | 'head' | 'regions';

/** What was loaded, for logs and for choosing preprocessing. */
export interface EncoderInfo {
  /** The checkpoint file actually read (a run directory resolves to its latest checkpoint). */
  file: string;
  arch: string;
  cifarStem: boolean;
  /** Channels of the first stage (64 = torchvision). */
  width: number;
  /** Size of the pooled backbone features. */
  featureDim: number;
  headKind: CheckpointHead;
  /**
   * What the head is: a trained classifier (a `moco lincls` or `moco finetune` checkpoint, a torchvision or main_lincls.py model:
   * an `fc` in a plain state dict) or a pre-training projection head (an MLP, or MoCo v1's `fc` kept under
   * `encoder_q`, in our pre-training checkpoints or converted from one); null without a head.
   */
  headRole: 'classifier' | 'projection' | null;
  /** Output size of the head; null without one. */
  headDim: number | null;
  /** Input side in pixels the encoder was trained on (metadata, else 32 for a CIFAR stem, else 224). */
  imageSize: number;
  layout: WeightsLayout;
  /** Where the architecture came from. */
  configFrom: 'metadata' | 'weights';
  /** The pre-training preset named in the metadata ('mocov2', 'cifar', …), if any. */
  preset: string | null;
  /** Epoch from the metadata, if any. */
  epoch: number | null;
}

/** The deterministic preprocessing matching an encoder: a loader preset and its options. */
export interface EvalPreprocess {
  augment: PresetName;
  augmentOpts: PresetOpts;
}

/** A loaded encoder in eval mode with frozen weights. Call {@link Encoder.dispose} when done. */
export class Encoder {
  constructor(
    readonly model: ResNet | VisionTransformer,
    readonly info: EncoderInfo,
  ) {
    model.eval();
    model.requiresGrad_(false);
  }

  /** The model as a ResNet, for what only a ResNet has (`what` names the caller in the error a ViT gets). */
  resnet(what: string): ResNet {
    if (this.model instanceof ResNet) return this.model;
    throw new Error(
      `${what} needs a ResNet encoder; ${this.info.file} is a Vision Transformer (${this.info.arch}): use --feature backbone or head`,
    );
  }

  /** The head module when it is one Linear (ResNet's `fc`, a ViT's `head`): what a classifier checkpoint trained. */
  headLinear(): Linear {
    const m = this.model instanceof ResNet ? this.model.fc : this.model.head;
    if (!(m instanceof Linear)) throw new Error(`${this.info.file}: the head is not one Linear layer`);
    return m;
  }

  /** Pooled backbone features, N × featureDim (no grad, eval-mode BN). */
  backbone(x: Tensor): Tensor {
    return noGrad(() => this.model.features(x));
  }

  /** Head output, N × headDim; throws when the checkpoint has no head. */
  head(x: Tensor): Tensor {
    if (this.info.headKind === 'none')
      throw new Error(`${this.info.file}: no projection head in this checkpoint; use the backbone features`);
    return noGrad(() => this.model.forward(x));
  }

  /** `backbone`, `head` or `regions` output (`regions` with `o`), not normalised. */
  encode(x: Tensor, feature: FeatureKind = 'backbone', o: RegionOpts = {}): Tensor {
    return feature === 'head'
      ? this.head(x)
      : feature === 'regions'
        ? regionFeatures(this.resnet('--feature regions'), x, o)
        : this.backbone(x);
  }

  /** Output size of `feature` (`regions` with `o`). */
  dim(feature: FeatureKind = 'backbone', o: RegionOpts = {}): number {
    if (feature === 'regions') return regionDim(this.resnet('--feature regions'), o);
    if (feature === 'head') {
      if (this.info.headDim === null) throw new Error(`${this.info.file}: no projection head in this checkpoint`);
      return this.info.headDim;
    }
    return this.info.featureDim;
  }

  /**
   * The evaluation preprocessing: for 32-px encoders (CIFAR stem) the image as is with CIFAR mean/std
   * ('cifar-eval'); otherwise Resize(size·256/224) + CenterCrop(size) with ImageNet mean/std ('eval').
   */
  preprocess(): EvalPreprocess {
    // CIFAR-trained (a CIFAR stem, or a CIFAR preset: cifar, mocov3-cifar, mocov3-vit-cifar): the 32-px image as is.
    const small = this.info.cifarStem || /(^|-)cifar$/.test(this.info.preset ?? '');
    if (small)
      return { augment: 'cifar-eval', augmentOpts: { size: this.info.imageSize, mean: CIFAR_MEAN, std: CIFAR_STD } };
    return { augment: 'eval', augmentOpts: { size: this.info.imageSize, mean: IMAGENET_MEAN, std: IMAGENET_STD } };
  }

  /**
   * The same evaluation transform as {@link preprocess}, in the terms an exported model records it (ONNX
   * metadata `preprocess`) and `moco embed MODEL.onnx`, `moco serve` and the browser page apply it.
   */
  evalTransform(): Preprocessing {
    const p = this.preprocess();
    const mean = [...p.augmentOpts.mean!] as [number, number, number];
    const std = [...p.augmentOpts.std!] as [number, number, number];
    if (p.augment === 'cifar-eval')
      return { size: p.augmentOpts.size ?? 32, resize: null, mean, std, preset: p.augment };
    return { ...stemPreprocessing(false, p.augmentOpts.size), mean, std };
  }

  /**
   * SHA-256 (hex) of the weights this encoder computes with: every parameter and buffer by name, dtype, shape and
   * bytes, in name order. It depends on the weights only, not on the file they came from (a run directory, its
   * checkpoint file, a conversion to another format), so collections record it to tell whether a query encoder is
   * the one that made their vectors. Left out: BN's batch counters (unused in eval mode) and, without a head in
   * the checkpoint, the randomly initialised `fc`.
   */
  weightsSha256(): string {
    if (this.sha256 !== undefined) return this.sha256;
    const h = createHash('sha256');
    const entries = [...this.model.stateDict()].filter(
      ([k]) => !k.endsWith('num_batches_tracked') && (this.info.headKind !== 'none' || !/^(fc|head)\./.test(k)),
    );
    for (const [k, t] of entries.sort(([a], [b]) => (a < b ? -1 : 1))) {
      const d = t.data();
      h.update(`${k}\0${t.dtype}\0${t.shape.join(',')}\0`).update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
    this.sha256 = h.digest('hex');
    return this.sha256;
  }

  private sha256?: string;

  dispose(): void {
    this.model.dispose();
  }
}

function disposeWeights(w: ImportedWeights): void {
  for (const t of [...w.backbone.values(), ...w.head.values()]) t.dispose();
}

/**
 * Resolves a checkpoint argument to a file: a file as is; a run directory's newest checkpoint that loads (see
 * {@link loadCheckpointFrom}: a damaged newest one is skipped with a warning). It loads the file to know that it
 * is intact; callers that want the weights use {@link loadCheckpointWeights} and read it once.
 */
export function resolveCheckpoint(path: string): string {
  return loadCheckpointFrom(path, (file) => {
    disposeWeights(loadPretrained(file));
    return true;
  }).file;
}

/** Loads the weights of a checkpoint file or run directory (the newest intact checkpoint of a directory). */
export function loadCheckpointWeights(path: string): { file: string; weights: ImportedWeights } {
  const r = loadCheckpointFrom(path, loadPretrained);
  return { file: r.file, weights: r.value };
}

const ARCH_OF: Record<string, string> = {
  'basic:2,2,2,2': 'resnet18',
  'basic:3,4,6,3': 'resnet34',
  'bottleneck:3,4,6,3': 'resnet50',
  'bottleneck:3,4,23,3': 'resnet101',
};

interface MocoMeta {
  arch?: string;
  cifarStem?: boolean;
  width?: number;
  imageSize?: number;
  preset?: string;
  epoch?: number;
}

/** The `moco` (or `config`) JSON metadata entry of our checkpoints, when present and parseable. */
function mocoMeta(meta: Record<string, string | number>): MocoMeta | null {
  for (const key of ['moco', 'config']) {
    const v = meta[key];
    if (typeof v !== 'string') continue;
    try {
      const o = JSON.parse(v) as unknown;
      if (o && typeof o === 'object') return o as MocoMeta;
    } catch {
      // Not ours; fall back to the weights.
    }
  }
  return null;
}

/**
 * What a checkpoint's head is (see EncoderInfo.headRole): an MLP is a projection head; a single Linear is MoCo v1's
 * projection when the key layout or our metadata says the weights come from pre-training, else a classifier (a
 * torchvision model, a `moco lincls` checkpoint); null without a head.
 */
export function headRoleOf(w: ImportedWeights): EncoderInfo['headRole'] {
  if (w.headKind === 'none') return null;
  const fromPretraining =
    w.layout.startsWith('moco') ||
    /^moco-/.test(String(w.meta.layout ?? '')) ||
    (mocoMeta(w.meta) !== null && w.meta.lincls === undefined && w.meta.finetune === undefined);
  return w.headKind === 'mlp' || fromPretraining ? 'projection' : 'classifier';
}

export interface LoadEncoderOpts {
  /** Override the input side in pixels (default: metadata, else 32 for a CIFAR stem, else 224). */
  imageSize?: number;
}

/**
 * Loads the query encoder of a checkpoint as a frozen {@link Encoder}: backbone plus its head (MoCo v1 `fc`,
 * v2 MLP, or a classifier `fc`), in eval mode. Accepts our checkpoint files and run directories, official
 * MoCo `.pth.tar`, torchvision `.pth`, and safetensors state dicts.
 */
export function loadEncoder(path: string, o: LoadEncoderOpts = {}): Encoder {
  const { file, weights: w } = loadCheckpointWeights(path);
  try {
    const meta = mocoMeta(w.meta);
    if (w.family === 'vit') return vitEncoder(file, w, meta, o);
    const shape = inferResNet(w.backbone);
    const inferredArch = ARCH_OF[`${shape.block}:${shape.layers.join(',')}`];
    const conv1 = w.backbone.get('conv1.weight')!;
    const width = meta?.width ?? conv1.shape[0]!;
    const cifarStem = meta?.cifarStem ?? shape.cifarStem;
    const arch = meta?.arch ?? inferredArch ?? (typeof w.meta.arch === 'string' ? w.meta.arch : undefined);
    if (!arch)
      throw new Error(`${file}: cannot tell the ResNet variant (${shape.block} blocks ${shape.layers.join('-')})`);
    const model = createModel(arch, { cifarStem, width });
    let headDim: number | null = null;
    if (w.headKind === 'mlp') {
      const out = w.head.get('fc.2.weight');
      if (!out) throw new Error(`${file}: MLP head without fc.2.weight`);
      headDim = out.shape[0]!;
      model.replaceModule('fc', projectionHead('mlp', model.featureDim, headDim));
    } else if (w.headKind === 'fc') {
      headDim = w.head.get('fc.weight')!.shape[0]!;
      model.replaceModule('fc', new Linear(model.featureDim, headDim, w.head.has('fc.bias')));
    }
    loadWeightsInto(file, model, w, 'fc', `${arch}${cifarStem ? ' (CIFAR stem)' : ''} width ${width}`);
    const imageSize = o.imageSize ?? meta?.imageSize ?? (cifarStem ? 32 : 224);
    return new Encoder(model, encoderInfo(file, w, meta, model, { arch, cifarStem, width, headDim, imageSize }));
  } finally {
    for (const t of w.backbone.values()) t.dispose();
    for (const t of w.head.values()) t.dispose();
  }
}

/** ViT widths → MoCo v3's named ViTs (vits.py), for checkpoints that do not name their arch. */
const VIT_OF_DIM: Record<number, string> = { 192: 'vit_tiny', 384: 'vit_small', 768: 'vit_base' };

/**
 * A Vision Transformer encoder: width and patch from the patch projection, depth from the blocks, input side
 * from the position embedding's tokens (1 + (side/patch)²), head count from the arch (metadata, the
 * checkpoint's `arch`, else the width's named ViT).
 */
function vitEncoder(file: string, w: ImportedWeights, meta: MocoMeta | null, o: LoadEncoderOpts): Encoder {
  const proj = w.backbone.get('patch_embed.proj.weight')!;
  const dim = proj.shape[0]!;
  const patch = proj.shape[2]!;
  let depth = 0;
  while (w.backbone.has(`blocks.${depth}.norm1.weight`)) depth++;
  const tokens = w.backbone.get('pos_embed')?.shape[1];
  const side = tokens !== undefined ? Math.round(Math.sqrt(tokens - 1)) * patch : (meta?.imageSize ?? 224);
  if (o.imageSize !== undefined && o.imageSize !== side) {
    throw new Error(
      `${file}: a Vision Transformer for ${side}-px inputs (its position embedding has ${tokens ?? '?'} tokens of ${patch}-px patches); it cannot take ${o.imageSize} px`,
    );
  }
  const arch = meta?.arch ?? (typeof w.meta.arch === 'string' ? w.meta.arch : undefined) ?? VIT_OF_DIM[dim];
  if (!arch)
    throw new Error(
      `${file}: cannot tell which Vision Transformer this is (${dim}-d tokens, ${depth} blocks); valid widths: ${Object.keys(VIT_OF_DIM).join(', ')}`,
    );
  const model = createViT(arch, { imgSize: side, patchSize: patch, depth });
  let headDim: number | null = null;
  if (w.headKind === 'fc') {
    headDim = w.head.get('head.weight')!.shape[0]!;
    model.replaceModule('head', new Linear(dim, headDim, w.head.has('head.bias')));
  } else if (w.headKind === 'mlp') {
    model.dispose();
    throw new Error(
      `${file}: a Vision Transformer with an MLP head outside MoCo v3's layout is not a format this reads`,
    );
  }
  loadWeightsInto(file, model, w, 'head', `${arch} (${dim}-d, ${depth} blocks, patch ${patch}, ${side} px)`);
  return new Encoder(
    model,
    encoderInfo(file, w, meta, model, { arch, cifarStem: false, width: dim, headDim, imageSize: side }),
  );
}

/**
 * Loads `w` into `model` by name, disposing the model and throwing when they do not fit (`what` describes the
 * architecture). Not counted as missing: BN's batch counter (unused in inference) and, when the checkpoint has
 * no head, the head slot `headSlot` (left as initialised).
 */
function loadWeightsInto(file: string, model: Module, w: ImportedWeights, headSlot: string, what: string): void {
  const r = model.loadStateDict(new Map([...w.backbone, ...w.head]), { strict: false });
  const missing = r.missingKeys.filter(
    (k) => !k.endsWith('num_batches_tracked') && (w.headKind !== 'none' || !k.startsWith(`${headSlot}.`)),
  );
  if (missing.length || r.unexpectedKeys.length) {
    model.dispose();
    throw new Error(
      `${file}: weights do not fit ${what}: missing ${missing.join(', ') || 'none'}; unexpected ${r.unexpectedKeys.join(', ') || 'none'}`,
    );
  }
}

/**
 * The {@link EncoderInfo} of loaded weights, given what the architecture's branch derived: the head's role, the
 * epoch and the metadata fields are read the same way for every family.
 */
function encoderInfo(
  file: string,
  w: ImportedWeights,
  meta: MocoMeta | null,
  model: ResNet | VisionTransformer,
  a: Pick<EncoderInfo, 'arch' | 'cifarStem' | 'width' | 'headDim' | 'imageSize'>,
): EncoderInfo {
  const epochMeta = meta?.epoch ?? w.meta.epoch;
  return {
    file,
    arch: a.arch,
    cifarStem: a.cifarStem,
    width: a.width,
    featureDim: model.featureDim,
    headKind: w.headKind,
    headRole: headRoleOf(w),
    headDim: a.headDim,
    imageSize: a.imageSize,
    layout: w.layout,
    configFrom: meta ? 'metadata' : 'weights',
    preset: meta?.preset ?? null,
    epoch: typeof epochMeta === 'number' ? epochMeta : epochMeta !== undefined ? Number(epochMeta) : null,
  };
}

/** One line describing a loaded encoder, for stderr logs. */
export function describeEncoder(e: Encoder): string {
  const i = e.info;
  const width = e.model instanceof VisionTransformer ? '' : i.width !== 64 ? ` width ${i.width}` : '';
  return `${i.file}: ${i.arch}${i.cifarStem ? ' (CIFAR stem)' : ''}${width}, features ${i.featureDim}-d, head ${i.headKind}${i.headDim ? ` (${i.headDim}-d)` : ''}, ${i.imageSize}px input, config from ${i.configFrom}${i.epoch !== null ? `, epoch ${i.epoch}` : ''}`;
}

/** Backbone parameters and buffers (everything but `fc.*`) of a model, by name. */
export function backboneTensors(model: Module): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of model.stateDict()) if (!k.startsWith('fc.')) out.set(k, t);
  return out;
}

/** Copies of the backbone tensors, for {@link checkBackboneUnchanged}. Dispose the map's tensors when done. */
export function snapshotBackbone(model: Module): Map<string, Tensor> {
  return tidy(() => {
    const out = new Map<string, Tensor>();
    for (const [k, t] of backboneTensors(model)) out.set(k, t.detach().clone());
    return out;
  }) as Map<string, Tensor>;
}

/**
 * main_lincls.py's sanity check: every backbone tensor (weights and BN running statistics) must equal the
 * loaded one exactly. Throws naming the changed tensors.
 */
export function checkBackboneUnchanged(model: Module, snapshot: Map<string, Tensor>): void {
  const changed: string[] = [];
  const now = backboneTensors(model);
  for (const [k, ref] of snapshot) {
    const t = now.get(k);
    if (!t) {
      changed.push(`${k} (missing)`);
      continue;
    }
    const same = tidy(
      () =>
        t.shape.length === ref.shape.length &&
        t.shape.every((d, i) => d === ref.shape[i]) &&
        t.eq(ref).all().item() === 1,
    );
    if (!same) changed.push(k);
  }
  if (changed.length)
    throw new Error(
      `sanity check failed: the frozen backbone changed during linear classification (${changed.slice(0, 5).join(', ')}${changed.length > 5 ? `, … ${changed.length} in all` : ''})`,
    );
}
