// Layers with PyTorch's parameter names, shapes and default initialisations.
import { F, Tensor, cat, empty, full, noGrad, ones, tensor, tidy, zeros } from '../torch/index.js';
import type { Conv2dOpts as FunctionalConv2dOpts } from '../torch/functional.js';
import { Module } from './module.js';
import { fans, kaimingUniform_, uniform_ } from './init.js';

type Pair = number | [number, number];

export interface Conv2dOpts extends FunctionalConv2dOpts {
  /** Default true (torchvision's ResNet passes false). */
  bias?: boolean;
}

/** nn.Conv2d: weight [out, in/groups, kH, kW], optional bias [out]; kaiming_uniform(a=√5) init. */
export class Conv2d extends Module {
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: Pair,
    readonly opts: Conv2dOpts = {},
  ) {
    super();
    const [kh, kw] = Array.isArray(kernelSize) ? kernelSize : [kernelSize, kernelSize];
    const groups = opts.groups ?? 1;
    if (inChannels % groups || outChannels % groups)
      throw new Error(`Conv2d: channels ${inChannels}→${outChannels} not divisible by groups ${groups}`);
    const w = this.registerParameter('weight', empty([outChannels, inChannels / groups, kh, kw]));
    kaimingUniform_(w, { a: Math.sqrt(5) });
    if (opts.bias ?? true) {
      const bound = 1 / Math.sqrt(fans(w).fanIn);
      uniform_(this.registerParameter('bias', empty([outChannels])), -bound, bound);
    } else {
      this.registerParameter('bias', null);
    }
  }
  get weight(): Tensor {
    return this.tensor('weight')!;
  }
  get bias(): Tensor | null {
    return this.tensor('bias');
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, this.opts);
  }
}

/** nn.Linear: weight [out, in], bias [out]; kaiming_uniform(a=√5) init, bias U(±1/√in). */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    const w = this.registerParameter('weight', empty([outFeatures, inFeatures]));
    kaimingUniform_(w, { a: Math.sqrt(5) });
    if (bias) {
      const bound = 1 / Math.sqrt(inFeatures);
      uniform_(this.registerParameter('bias', empty([outFeatures])), -bound, bound);
    } else {
      this.registerParameter('bias', null);
    }
  }
  get weight(): Tensor {
    return this.tensor('weight')!;
  }
  get bias(): Tensor | null {
    return this.tensor('bias');
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export interface BatchNormOpts {
  /** Default 1e-5. */
  eps?: number;
  /** Running-average factor; default 0.1. */
  momentum?: number;
}

/**
 * What nn.BatchNorm1d and nn.BatchNorm2d share (PyTorch's `_BatchNorm`): optional affine weight/bias, running
 * statistics (running_mean, running_var, num_batches_tracked) and the forward; subclasses check the input's rank.
 */
export abstract class BatchNormBase extends Module {
  readonly eps: number;
  readonly momentum: number;
  readonly affine: boolean;
  constructor(
    readonly numFeatures: number,
    opts: BatchNormOpts & { affine?: boolean } = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    this.affine = opts.affine ?? true;
    this.registerParameter('weight', this.affine ? ones([numFeatures]) : null);
    this.registerParameter('bias', this.affine ? zeros([numFeatures]) : null);
    this.registerBuffer('running_mean', zeros([numFeatures]));
    this.registerBuffer('running_var', ones([numFeatures]));
    this.registerBuffer('num_batches_tracked', tensor([0], { dtype: 'int64', shape: [] }));
  }
  get weight(): Tensor | null {
    return this.tensor('weight');
  }
  get bias(): Tensor | null {
    return this.tensor('bias');
  }
  get runningMean(): Tensor {
    return this.tensor('running_mean')!;
  }
  get runningVar(): Tensor {
    return this.tensor('running_var')!;
  }
  get numBatchesTracked(): Tensor {
    return this.tensor('num_batches_tracked')!;
  }

  /**
   * A differentiable sum over the processes of a data-parallel run: when set, training batches are normalised
   * with the statistics of every process's batch together (PyTorch's SyncBatchNorm; see {@link syncBatchNorm}).
   * Null (default): this process's batch only.
   */
  crossProcessSum: CrossProcessSum | null = null;

  /** Throws when `x` is not of a rank this norm takes. */
  protected abstract checkInput(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkInput(x);
    if (this.training) this.numBatchesTracked.add_(1);
    if (this.training && this.crossProcessSum) return this.syncForward(x, this.crossProcessSum);
    return F.batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }

  /**
   * Training-mode BN over the union of all processes' batches: the mean from the summed per-channel sums and
   * counts, the biased variance from the summed squared deviations (two passes, as F.batchNorm's), both through
   * the differentiable sum so each process's gradient reaches every process's samples. The running variance is
   * unbiased over the global count, as nn.SyncBatchNorm's.
   */
  private syncForward(input: Tensor, sum: CrossProcessSum): Tensor {
    const c = input.shape[1]!;
    const dims = [0, ...Array.from({ length: input.dim() - 2 }, (_, i) => i + 2)];
    const shape = [1, c, ...Array<number>(input.dim() - 2).fill(1)];
    return tidy(() => {
      // Statistics in float32 at least, as the native kernel accumulates a bf16 batch (its counts exact too).
      const low = input.dtype === 'bfloat16' || input.dtype === 'float16';
      const x = low ? input.to('float32') : input;
      const count = full([1], x.numel() / c, { dtype: x.dtype, device: x.device });
      const totals = sum(cat([x.sum({ dim: dims }), count]));
      const n = totals.narrow(0, c, 1).item();
      const mean = totals.narrow(0, 0, c).div(n);
      const xc = x.sub(mean.view(...shape));
      const variance = sum(xc.mul(xc).sum({ dim: dims })).div(n);
      let y = xc.mul(
        variance
          .add(this.eps)
          .rsqrt()
          .view(...shape),
      );
      if (this.weight && this.bias) y = y.mul(this.weight.view(...shape)).add(this.bias.view(...shape));
      noGrad(() => {
        const m = this.momentum;
        this.runningMean.mul_(1 - m).add_(mean.detach().mul(m));
        this.runningVar.mul_(1 - m).add_(variance.detach().mul((m * n) / Math.max(1, n - 1)));
      });
      return low ? y.to(input.dtype) : y;
    });
  }
}

/** A differentiable sum over the processes of a run (dist's ProcessGroup.allReduceSumGradSync). */
export type CrossProcessSum = (t: Tensor) => Tensor;

/**
 * nn.SyncBatchNorm.convert_sync_batchnorm: every BatchNorm1d/2d in `module` normalises training batches over all
 * processes through `sum` (null: back to per-process). SplitBatchNorm2d, MoCo v2's one-process ShuffleBN emulation,
 * is refused. Returns the number of layers set.
 */
export function syncBatchNorm(module: Module, sum: CrossProcessSum | null): number {
  let n = 0;
  module.apply((m) => {
    if (!(m instanceof BatchNormBase)) return;
    if (m instanceof SplitBatchNorm2d && m.numSplits > 1)
      throw new Error(
        `syncBatchNorm: a SplitBatchNorm2d of ${m.numSplits} splits emulates per-process BN in one process; build the model with --bn-splits 1`,
      );
    m.crossProcessSum = sum;
    n++;
  });
  return n;
}

/** nn.BatchNorm2d over N×C×H×W inputs, always affine (every use in the models is). */
export class BatchNorm2d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNormOpts = {}) {
    super(numFeatures, { ...opts, affine: true });
  }
  override get weight(): Tensor {
    return this.tensor('weight')!;
  }
  override get bias(): Tensor {
    return this.tensor('bias')!;
  }
  protected checkInput(x: Tensor): void {
    if (x.dim() !== 4) throw new Error(`BatchNorm2d: expected a 4-D input, got [${x.shape.join(', ')}]`);
  }
}

export interface BatchNorm1dOpts extends BatchNormOpts {
  /** Learnable weight (γ) and bias (β). Default true; MoCo v3's last projector BN has none. */
  affine?: boolean;
}

/**
 * nn.BatchNorm1d over N×C (or N×C×L) inputs; with `affine` false no weight/bias parameters are registered, so
 * the state dict has only the buffers, as PyTorch's.
 */
export class BatchNorm1d extends BatchNormBase {
  constructor(numFeatures: number, opts: BatchNorm1dOpts = {}) {
    super(numFeatures, opts);
  }
  protected checkInput(x: Tensor): void {
    if (x.dim() !== 2 && x.dim() !== 3)
      throw new Error(`BatchNorm1d: expected a 2-D or 3-D input, got [${x.shape.join(', ')}]`);
  }
}

/**
 * BatchNorm whose training statistics come from `numSplits` equal sub-batches (MoCo's one-process ShuffleBN
 * emulation, as the official CIFAR demo's SplitBatchNorm): the batch is viewed as numSplits groups of channels,
 * normalised per group, and the running statistics are the mean of the groups'. Evaluation is plain BN.
 */
export class SplitBatchNorm2d extends BatchNorm2d {
  constructor(
    numFeatures: number,
    readonly numSplits: number,
    opts: BatchNormOpts = {},
  ) {
    super(numFeatures, opts);
    if (!Number.isInteger(numSplits) || numSplits < 1)
      throw new RangeError(`SplitBatchNorm2d: numSplits must be a positive integer, got ${numSplits}`);
  }

  override forward(x: Tensor): Tensor {
    if (!this.training || this.numSplits === 1) return super.forward(x);
    const [n, c, h, w] = x.shape as [number, number, number, number];
    if (n % this.numSplits)
      throw new Error(`SplitBatchNorm2d: batch of ${n} does not split into ${this.numSplits} equal sub-batches`);
    const s = this.numSplits;
    const rm = this.runningMean.repeat(s);
    const rv = this.runningVar.repeat(s);
    const wt = this.weight.repeat(s);
    const bs = this.bias.repeat(s);
    // reshape, not view: a channels-last batch cannot be viewed as N/s × (c·s) planes (reshape copies it then;
    // for the usual contiguous batch it is the same view).
    const xv = x.reshape(-1, c * s, h, w);
    const yv = F.batchNorm(xv, rm, rv, wt, bs, { training: true, momentum: this.momentum, eps: this.eps });
    const y = yv.reshape(n, c, h, w);
    const m = rm.view(s, c).mean({ dim: 0 });
    const v = rv.view(s, c).mean({ dim: 0 });
    this.runningMean.copy_(m);
    this.runningVar.copy_(v);
    for (const t of [rm, rv, wt, bs, xv, yv, m, v]) t.dispose();
    return y;
  }
}

export interface LayerNormOpts {
  /** Default 1e-5 (timm's ViT passes 1e-6). */
  eps?: number;
  /** Learnable per-element weight (ones) and bias (zeros). Default true. */
  elementwiseAffine?: boolean;
}

/** nn.LayerNorm over the trailing `normalizedShape` dimensions; weight 1, bias 0. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(normalizedShape: number | number[], opts: LayerNormOpts = {}) {
    super();
    this.normalizedShape = Array.isArray(normalizedShape) ? [...normalizedShape] : [normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.registerParameter('weight', affine ? ones(this.normalizedShape) : null);
    this.registerParameter('bias', affine ? zeros(this.normalizedShape) : null);
  }
  get weight(): Tensor | null {
    return this.tensor('weight');
  }
  get bias(): Tensor | null {
    return this.tensor('bias');
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/** nn.GELU: exact (erf) by default, as timm's ViT MLP uses it. */
export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, this.approximate);
  }
}

export class ReLU extends Module {
  constructor(readonly inplace = false) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.relu(x, this.inplace);
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.flatten(this.startDim, this.endDim);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly opts: { stride?: Pair; padding?: Pair } = {},
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, {
      stride: this.opts.stride ?? this.kernelSize,
      padding: this.opts.padding ?? 0,
    });
  }
}

/** Children named '0', '1', … applied in order, as nn.Sequential. */
export class Sequential extends Module {
  constructor(...layers: Module[]) {
    super();
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }
  get length(): number {
    return this.children().length;
  }
  at(i: number): Module {
    return this.child(String(i));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.children()) {
      const next = m.forward(y);
      // Intermediates belong to the caller's tidy scope; nothing to free here.
      y = next;
    }
    return y;
  }
}
