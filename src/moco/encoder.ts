// The encoder every mechanism trains: a torchvision-layout ResNet whose fc is the projection head.
import { BatchNorm2d, SplitBatchNorm2d } from '../nn/index.js';
import { createModel, projectionHead, type HeadKind, type ResNet } from '../models/index.js';

export interface EncoderOpts {
  /** Backbone architecture (torchvision name). */
  arch: string;
  /** Output (feature) dimension. */
  dim: number;
  /** 'fc' (v1) or 'mlp' (v2). */
  head: HeadKind;
  /** 3×3 stride-1 stem without max-pool (CIFAR). */
  cifarStem: boolean;
  /** First-stage channels (64 = torchvision). */
  width: number;
  /** SplitBatchNorm2d sub-batches (one-process ShuffleBN emulation); 1 = plain BN. */
  bnSplits: number;
}

/** Builds f_q (or f_k): ResNet with `dim` outputs; the MLP head wraps a hidden layer around fc, as main_moco.py. */
export function contrastiveEncoder(o: EncoderOpts): ResNet {
  const normLayer = o.bnSplits > 1 ? (c: number): BatchNorm2d => new SplitBatchNorm2d(c, o.bnSplits) : undefined;
  const enc = createModel(o.arch, { numClasses: o.dim, cifarStem: o.cifarStem, width: o.width, normLayer });
  if (o.head === 'mlp') enc.replaceModule('fc', projectionHead('mlp', enc.featureDim, o.dim));
  return enc;
}
