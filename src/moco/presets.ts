// Recipes: the official ImageNet settings (v1, v2) and the official CIFAR-10 demo (colab notebook).
import type { PresetName } from '../data/index.js';
import type { HeadKind } from '../models/index.js';

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
}

export type RecipeName = 'mocov1' | 'mocov2' | 'cifar';

/** The recipe of a run that names none: main_moco.py's own defaults (ResNet-50, 224 px, batch 256, K 65536). */
export const DEFAULT_PRESET: RecipeName = 'mocov1';

const IMAGENET = {
  arch: 'resnet50', cifarStem: false, width: 64, imageSize: 224, dim: 128, K: 65536, m: 0.999,
  lr: 0.03, wd: 1e-4, momentum: 0.9, batchSize: 256, epochs: 200, schedule: [120, 160],
  // One process emulates the official 8-GPU ShuffleBN: BN over 8 sub-batches of the shuffled key batch.
  bnSplits: 8, symmetric: false, evalAugment: 'eval' as PresetName,
};

export const RECIPES: Record<RecipeName, Recipe> = {
  /** main_moco.py defaults: fc head, T 0.07, v1 augmentation, step LR at 120 and 160. */
  mocov1: { ...IMAGENET, T: 0.07, head: 'fc', augment: 'mocov1', cos: false },
  /** MoCo v2: --mlp --moco-t 0.2 --aug-plus --cos. */
  mocov2: { ...IMAGENET, T: 0.2, head: 'mlp', augment: 'mocov2', cos: true },
  /** The official CIFAR-10 demo: ResNet-18 CIFAR stem, K 4096, m 0.99, T 0.1, batch 512, lr 0.06, wd 5e-4, cos, SplitBN 8. */
  cifar: {
    arch: 'resnet18', cifarStem: true, width: 64, imageSize: 32, dim: 128, K: 4096, m: 0.99, T: 0.1, head: 'fc',
    augment: 'cifar', evalAugment: 'cifar-eval', lr: 0.06, wd: 5e-4, momentum: 0.9, batchSize: 512, epochs: 200,
    cos: true, schedule: [120, 160], bnSplits: 8, symmetric: false,
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
 * explodes and the classifier ends at chance. The CIFAR value is measured (README, `moco lincls`'s lr): the
 * official demo evaluates with a kNN monitor only and names no linear lr.
 */
export const LINCLS_LR: Record<RecipeName, number> = { mocov1: 30, mocov2: 30, cifar: 0.1 };
