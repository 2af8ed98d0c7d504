// torch.nn.functional, with PyTorch's argument meanings and defaults.
import { op, Tensor } from './tensor.js';

type Pair = number | [number, number];

export interface Conv2dOpts {
  /** Default 1. */
  stride?: Pair;
  /** Default 0. */
  padding?: Pair;
  /** Default 1. */
  dilation?: Pair;
  /** Default 1. */
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOpts = {}): Tensor {
  return op('aten::conv2d', '', [input, weight, bias, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1]);
}

export interface BatchNormOpts {
  /** Batch statistics (and running-stat update) when true; running statistics when false. */
  training: boolean;
  /** Running-stat update factor; default 0.1. */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
}

/** F.batch_norm: running stats are updated in place when training. */
export function batchNorm(
  input: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null,
  bias: Tensor | null,
  o: BatchNormOpts,
): Tensor {
  return op('aten::batch_norm', '', [
    input,
    weight,
    bias,
    runningMean,
    runningVar,
    o.training,
    o.momentum ?? 0.1,
    o.eps ?? 1e-5,
    true,
  ]);
}

export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return op('aten::linear', '', [input, weight, bias]);
}

/** F.layer_norm over the trailing `normalizedShape` dimensions (default eps 1e-5, as nn.LayerNorm). */
export function layerNorm(
  input: Tensor,
  normalizedShape: number[],
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  eps = 1e-5,
): Tensor {
  return op('aten::layer_norm', '', [input, normalizedShape, weight, bias, eps]);
}

/** F.gelu: x·Φ(x), exact (erf) by default; 'tanh' is the approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return op('aten::gelu', '', [x], { approximate });
}

export function relu(x: Tensor, inplace = false): Tensor {
  return inplace ? op('aten::relu_', '', [x]) : op('aten::relu', '', [x]);
}

export interface PoolOpts {
  /** Default: kernelSize. */
  stride?: Pair;
  /** Default 0. */
  padding?: Pair;
  /** Default false. */
  ceilMode?: boolean;
}

export function maxPool2d(x: Tensor, kernelSize: Pair, o: PoolOpts & { dilation?: Pair } = {}): Tensor {
  return op('aten::max_pool2d', '', [
    x,
    kernelSize,
    o.stride ?? [],
    o.padding ?? 0,
    o.dilation ?? 1,
    o.ceilMode ?? false,
  ]);
}

export function avgPool2d(x: Tensor, kernelSize: Pair, o: PoolOpts & { countIncludePad?: boolean } = {}): Tensor {
  return op('aten::avg_pool2d', '', [
    x,
    kernelSize,
    o.stride ?? [],
    o.padding ?? 0,
    o.ceilMode ?? false,
    o.countIncludePad ?? true,
    null,
  ]);
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return op('aten::adaptive_avg_pool2d', '', [x, outputSize]);
}

/** F.normalize: x / max(‖x‖_p, eps) along `dim` (default p 2, dim 1, eps 1e-12). */
export function normalize(x: Tensor, o: { p?: number; dim?: number; eps?: number } = {}): Tensor {
  const n = x.norm(o.p ?? 2, { dim: o.dim ?? 1, keepdim: true });
  const d = n.clampMin(o.eps ?? 1e-12);
  const e = d.expandAs(x);
  const y = x.div(e);
  n.dispose();
  d.dispose();
  e.dispose();
  return y;
}

export function softmax(x: Tensor, dim: number): Tensor {
  return op('aten::softmax', 'int', [x, dim]);
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return op('aten::log_softmax', 'int', [x, dim]);
}

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

export interface LossOpts {
  /** Per-class weight. */
  weight?: Tensor | null;
  /** Default 'mean'. */
  reduction?: Reduction;
  /** Targets equal to this are ignored; default −100. */
  ignoreIndex?: number;
}

/** Cross-entropy of logits (N×C) against class indices (N, int64). */
export function crossEntropy(input: Tensor, target: Tensor, o: LossOpts = {}): Tensor {
  return op('aten::cross_entropy_loss', '', [
    input,
    target,
    o.weight ?? null,
    REDUCTION[o.reduction ?? 'mean'],
    o.ignoreIndex ?? -100,
    0.0,
  ]);
}

export function nllLoss(logProbs: Tensor, target: Tensor, o: LossOpts = {}): Tensor {
  return op('aten::nll_loss_nd', '', [
    logProbs,
    target,
    o.weight ?? null,
    REDUCTION[o.reduction ?? 'mean'],
    o.ignoreIndex ?? -100,
  ]);
}

export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return op('aten::dropout', '', [x, p, training]);
}

export interface InterpolateOpts {
  /** Output height and width (or give scaleFactor). */
  size?: [number, number];
  scaleFactor?: number | [number, number];
  /** Default 'nearest'. */
  mode?: 'nearest' | 'bilinear';
  /** bilinear only; default false. */
  alignCorners?: boolean;
}

/** F.interpolate for 4-d input, antialias off. */
export function interpolate(x: Tensor, o: InterpolateOpts): Tensor {
  const size = o.size ?? null;
  const sf =
    o.scaleFactor === undefined ? null : Array.isArray(o.scaleFactor) ? o.scaleFactor : [o.scaleFactor, o.scaleFactor];
  if (!size && !sf) throw new Error('interpolate: give size or scaleFactor');
  if ((o.mode ?? 'nearest') === 'bilinear')
    return op('aten::upsample_bilinear2d', 'vec', [x, size, o.alignCorners ?? false, sf]);
  return op('aten::upsample_nearest2d', 'vec', [x, size, sf]);
}

/** Sampling grid (N×H×W×2) for the affine matrices theta (N×2×3), as F.affine_grid. */
export function affineGrid(theta: Tensor, size: [number, number, number, number], alignCorners = false): Tensor {
  return op('aten::affine_grid_generator', '', [theta, size, alignCorners]);
}

const GS_MODE = { bilinear: 0, nearest: 1, bicubic: 2 } as const;
const GS_PAD = { zeros: 0, border: 1, reflection: 2 } as const;

/** F.grid_sample. Defaults: bilinear, zeros padding, alignCorners false. */
export function gridSample(
  x: Tensor,
  grid: Tensor,
  o: { mode?: keyof typeof GS_MODE; paddingMode?: keyof typeof GS_PAD; alignCorners?: boolean } = {},
): Tensor {
  return op('aten::grid_sampler', '', [
    x,
    grid,
    GS_MODE[o.mode ?? 'bilinear'],
    GS_PAD[o.paddingMode ?? 'zeros'],
    o.alignCorners ?? false,
  ]);
}

/** F.pad; `pad` lists (left, right, top, bottom, …) from the last dimension backwards. */
export function pad(
  x: Tensor,
  padding: number[],
  mode: 'constant' | 'reflect' | 'replicate' = 'constant',
  value = 0,
): Tensor {
  if (mode === 'constant') return op('aten::constant_pad_nd', '', [x, padding, value]);
  const kind = mode === 'reflect' ? 'reflection' : 'replication';
  const d = padding.length / 2;
  if (d !== 1 && d !== 2)
    throw new Error(`pad: ${mode} padding supports 1-d and 2-d padding, got ${padding.length} values`);
  return op(`aten::${kind}_pad${d}d`, '', [x, padding]);
}
