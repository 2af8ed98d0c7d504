// Recipes: the official ImageNet settings (v1, v2), the official CIFAR-10 demo (colab notebook), and MoCo v3's
// (main_moco.py of facebookresearch/moco-v3 and its CONFIG.md; CIFAR ones after the peer's docstring).
import type { PresetName } from '../data/index.js';
import type { HeadKind } from '../models/index.js';
import type { OptimizerName } from '../optim/index.js';
import type { MechanismName } from './mechanism.js';

export interface Recipe {
  arch: string;
  cifarStem: boolean;
  width: number;
  imageSize: number;
  dim: number;
  K: number;
  m: number;
  T: number;
  head: HeadKind;
  augment: PresetName;
  /** Deterministic preprocessing for the kNN monitor and feature extraction. */
  evalAugment: PresetName;
  lr: number;
  wd: number;
  momentum: number;
  batchSize: number;
  epochs: number;
  cos: boolean;
  schedule: number[];
  bnSplits: number;
  symmetric: boolean;
  /** The mechanism the recipe trains (presets name it; `--mechanism` overrides). */
  mechanism: MechanismName;
  /** sgd (v1/v2), lars (MoCo v3 ResNets) or adamw (MoCo v3 ViTs). */
  optimizer: OptimizerName;
  /** MoCo v3: epochs of linear lr warm-up before the half-cosine (set every iteration). */
  warmupEpochs: number;
  /** MoCo v3 --moco-m-cos: the momentum rises from --moco-m to 1 on a half-cosine, set every iteration. */
  mocoMCos: boolean;
  /** MoCo v3: hidden width of the projector and predictor MLPs (mlp_dim). */
  mlpDim: number;
  /** MoCo v3 ViT: a frozen random patch projection. */
  stopGradConv1: boolean;
  /** Lower scale of the random resized crop; 0: the augmentation preset's own. */
  cropMin: number;
  /** ViT: patch size. */
  patchSize: number;
  /** ViT: transformer blocks; 0: the arch's own (12). */
  vitDepth: number;
}

/**
 * The values of the settings a recipe from before MoCo v3 does not name: what v1/v2 runs do. A resumed run's
 * config.json from before those settings existed is read with these.
 */
export const RECIPE_FALLBACKS = {
  mechanism: 'moco',
  optimizer: 'sgd',
  warmupEpochs: 0,
  mocoMCos: false,
  mlpDim: 4096,
  stopGradConv1: false,
  cropMin: 0,
  patchSize: 16,
  vitDepth: 0,
} as const satisfies Partial<Recipe>;

export type RecipeName =
  | 'mocov1'
  | 'mocov2'
  | 'cifar'
  | 'mocov3'
  | 'mocov3-vit-small'
  | 'mocov3-vit-base'
  | 'mocov3-cifar'
  | 'mocov3-vit-cifar';

/** The recipe of a run that names none: main_moco.py's own defaults (ResNet-50, 224 px, batch 256, K 65536). */
export const DEFAULT_PRESET: RecipeName = 'mocov1';

const IMAGENET = {
  arch: 'resnet50',
  cifarStem: false,
  width: 64,
  imageSize: 224,
  dim: 128,
  K: 65536,
  m: 0.999,
  lr: 0.03,
  wd: 1e-4,
  momentum: 0.9,
  batchSize: 256,
  epochs: 200,
  schedule: [120, 160],
  // One process emulates the official 8-GPU ShuffleBN: BN over 8 sub-batches of the shuffled key batch.
  bnSplits: 8,
  symmetric: false,
  evalAugment: 'eval' as PresetName,
  ...RECIPE_FALLBACKS,
};

/** MoCo v3 on ImageNet: no queue (K unused), plain BN over the batch, per-iteration lr with warm-up. */
const V3_IMAGENET = {
  ...IMAGENET,
  mechanism: 'mocov3' as const,
  head: 'mlp' as const,
  augment: 'mocov3' as PresetName,
  cos: true,
  bnSplits: 1,
  momentum: 0.9,
  mlpDim: 4096,
  dim: 256,
  m: 0.99,
  cropMin: 0.08,
  batchSize: 4096,
};

/** The ViT recipes of CONFIG.md: AdamW lr 1.5e-4 wd 0.1, T 0.2, 300 epochs, warm-up 40, random patch projection. */
const V3_VIT = {
  ...V3_IMAGENET,
  optimizer: 'adamw' as const,
  lr: 1.5e-4,
  wd: 0.1,
  T: 0.2,
  epochs: 300,
  warmupEpochs: 40,
  stopGradConv1: true,
  mocoMCos: true,
  patchSize: 16,
  vitDepth: 0,
};

/** MoCo v3 on CIFAR-sized images (the peer's docstring): 32 px, batch 512, 1 warm-up epoch, --moco-m-cos. */
const V3_CIFAR = {
  ...V3_IMAGENET,
  cifarStem: true,
  imageSize: 32,
  augment: 'mocov3-cifar' as PresetName,
  evalAugment: 'cifar-eval' as PresetName,
  T: 0.2,
  mlpDim: 2048,
  dim: 256,
  batchSize: 512,
  epochs: 200,
  warmupEpochs: 1,
  mocoMCos: true,
  m: 0.99,
};

export const RECIPES: Record<RecipeName, Recipe> = {
  /** main_moco.py defaults: fc head, T 0.07, v1 augmentation, step LR at 120 and 160. */
  mocov1: { ...IMAGENET, T: 0.07, head: 'fc', augment: 'mocov1', cos: false },
  /** MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos. */
  mocov2: { ...IMAGENET, T: 0.2, head: 'mlp', augment: 'mocov2', cos: true },
  /** The official CIFAR-10 demo: ResNet-18 CIFAR stem, K 4096, m 0.99, T 0.1, batch 512, lr 0.06, wd 5e-4, cos, SplitBN 8. */
  cifar: {
    arch: 'resnet18',
    cifarStem: true,
    width: 64,
    imageSize: 32,
    dim: 128,
    K: 4096,
    m: 0.99,
    T: 0.1,
    head: 'fc',
    augment: 'cifar',
    evalAugment: 'cifar-eval',
    lr: 0.06,
    wd: 5e-4,
    momentum: 0.9,
    batchSize: 512,
    epochs: 200,
    cos: true,
    schedule: [120, 160],
    bnSplits: 8,
    symmetric: false,
    ...RECIPE_FALLBACKS,
  },
  /** MoCo v3 ResNet-50 (CONFIG.md, 100 epochs): LARS lr 0.6, wd 1e-6, T 1.0, batch 4096, warm-up 10, mlp 4096, dim 256, m 0.99. */
  mocov3: {
    ...V3_IMAGENET,
    arch: 'resnet50',
    optimizer: 'lars',
    lr: 0.6,
    wd: 1e-6,
    T: 1.0,
    epochs: 100,
    warmupEpochs: 10,
  },
  /** MoCo v3 ViT-Small: AdamW lr 1.5e-4, wd 0.1, T 0.2, warm-up 40, 300 epochs, --stop-grad-conv1 --moco-m-cos. */
  'mocov3-vit-small': { ...V3_VIT, arch: 'vit_small', batchSize: 4096 },
  /** MoCo v3 ViT-Base: as ViT-Small. */
  'mocov3-vit-base': { ...V3_VIT, arch: 'vit_base', batchSize: 4096 },
  /** ResNet-18 CIFAR stem, LARS lr 0.3 wd 1e-6, T 0.2, mlp 2048, dim 256, crop-min 0.08, batch 512, warm-up 1, --moco-m-cos. */
  'mocov3-cifar': { ...V3_CIFAR, arch: 'resnet18', optimizer: 'lars', lr: 0.3, wd: 1e-6 },
  /** ViT-Tiny, 6 blocks, patch 4 on 32 px: AdamW lr 1.5e-4 wd 0.1, T 0.2, --stop-grad-conv1. */
  'mocov3-vit-cifar': {
    ...V3_CIFAR,
    arch: 'vit_tiny',
    cifarStem: false,
    vitDepth: 6,
    patchSize: 4,
    optimizer: 'adamw',
    lr: 1.5e-4,
    wd: 0.1,
    stopGradConv1: true,
  },
};

export function recipe(name: string): Recipe {
  const r = RECIPES[name as RecipeName];
  if (!r) throw new Error(`unknown --preset '${name}'; valid: ${Object.keys(RECIPES).join(', ')}`);
  return { ...r, schedule: [...r.schedule] };
}

/**
 * Base lr of the linear protocol (`moco lincls`) on each recipe's encoders. main_lincls.py's 30 belongs to
 * ImageNet ResNet-50 features; on the CIFAR recipe's ResNet-18 (CIFAR stem) it overshoots until the loss
 * explodes and the classifier ends at chance. The CIFAR value is measured (docs/benchmarks.md, `moco lincls`'s learning rate): the
 * official demo evaluates with a kNN monitor only and names no linear lr.
 */
export const LINCLS_LR: Record<'mocov1' | 'mocov2' | 'cifar', number> = { mocov1: 30, mocov2: 30, cifar: 0.1 };

/**
 * MoCo v3's linear protocol (moco-v3's main_lincls.py and CONFIG.md): lr = base × batch / 256 with base 0.1 for
 * ResNets and 3 for ViTs, cosine decay, 90 epochs (momentum 0.9 and wd 0 as v2's).
 */
export const LINCLS_V3 = { lrResNet: 0.1, lrViT: 3, epochs: 90 } as const;
