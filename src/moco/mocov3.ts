// MoCo v3 (Chen, Xie, He 2021, Algorithm 1; facebookresearch/moco-v3 builder.py), ResNet or ViT backbone:
//   q1, q2 = predictor(base_encoder(x1)), predictor(base_encoder(x2))      base_encoder = backbone + projector
//   θk ← m·θk + (1−m)·θq (parameters only), then k1, k2 = momentum_encoder(x1), momentum_encoder(x2), no grad
//   loss = ctr(q1, k2) + ctr(q2, k1);  ctr(q, k) = CE(norm(q)·norm(k)ᵀ / τ, arange(N)) · 2τ
// No queue and no key shuffle: a query's negatives are the other keys of the batch (of every process, once the
// keys are gathered), and BN is plain BN over the batch — over every process's batch in a multi-process run
// (SyncBatchNorm, as main_moco.py converts the model).
// The ×2τ undoes the 1/τ scale of the gradient, so the loss magnitude does not depend on τ (builder.py's comment).
import { F, Tensor, arange, foreachAdd_, foreachMul_, noGrad } from '../torch/index.js';
import { Module, type Sequential } from '../nn/index.js';
import { VIT_ARCHS, createModel, createViT, mlpHead, type Backbone } from '../models/index.js';
import type { Mechanism, MechanismOutput, StepBatch, StepRandomness } from './mechanism.js';

export interface MoCoV3Opts {
  /** Backbone architecture (torchvision name). Default 'resnet50'. */
  arch?: string;
  /** Output dimension of the projector and predictor (dim). Default 256. */
  dim?: number;
  /** Hidden dimension of the projector and predictor MLPs (mlp_dim). Default 4096. */
  mlpDim?: number;
  /** Momentum of the momentum encoder (m; the start value m0 of the --moco-m-cos schedule). Default 0.99. */
  m?: number;
  /** Softmax temperature τ. Default 1.0 (the ResNet recipe; ViTs use 0.2). */
  T?: number;
  /** 3×3 stride-1 stem without max-pool (CIFAR). Default false. */
  cifarStem?: boolean;
  /** First-stage channels of the ResNet. Default 64. */
  width?: number;
  /** ViT: input size (the views' crop size). Default 224. */
  imageSize?: number;
  /** ViT: patch size. Default 16. */
  patchSize?: number;
  /** ViT: transformer blocks; 0 (default) the arch's own (12). */
  vitDepth?: number;
  /** ViT: MoCo v3's --stop-grad-conv1, a frozen random patch projection. Default false. */
  stopGradConv1?: boolean;
}

/** Whether `arch` names a Vision Transformer (vit_tiny, vit_small, vit_base) rather than a ResNet. */
export function isViTArch(arch: string): boolean {
  return arch in VIT_ARCHS;
}

/** Hooks for multi-process training (builder.py's concat_all_gather and the rank's labels). */
export interface MoCoV3DistHooks {
  /** The L2-normalised keys of every process, concatenated in rank order, without gradient. */
  gatherKeys?: (k: Tensor) => Tensor;
  /** This process's rank: row i's positive is gathered key N·rank + i. Default 0. */
  rank?: number;
}

export interface MoCoV3Output {
  /** The summed loss ctr(q1, k2) + ctr(q2, k1). */
  loss: Tensor;
  /** N×M logits q1·k2ᵀ / τ of the first direction (M = N, or N × processes once keys are gathered). */
  logits: Tensor;
  /** int64 N: the column of each row's positive, arange(N) + N·rank. */
  labels: Tensor;
  /** N×dim L2-normalised predictions of the first view, for monitoring (embedding spread). */
  q: Tensor;
  /** N×featureDim backbone features of the first view, detached (see MechanismOutput.features). */
  features: Tensor;
}

/**
 * The MoCo v3 model: base and momentum encoders and the predictor. ResNet backbone (MoCo_ResNet): `fc` is the
 * 2-layer projector (zero-init residual), the predictor 2 layers without the last BN. ViT backbone (MoCo_ViT):
 * `head` is the 3-layer projector, the predictor 2 layers with the last BN. State-dict keys match the official
 * code's (base_encoder.*, momentum_encoder.*, predictor.*).
 */
export class MoCoV3 extends Module implements Mechanism {
  readonly mechanism = 'mocov3' as const;
  readonly viewsPerImage = 2 as const;
  readonly opts: Required<MoCoV3Opts>;
  dist: MoCoV3DistHooks = {};
  private momentum: number;
  private baseParams: Tensor[] = [];
  private momentumParams: Tensor[] = [];

  constructor(o: MoCoV3Opts = {}) {
    super();
    this.opts = {
      arch: o.arch ?? 'resnet50',
      dim: o.dim ?? 256,
      mlpDim: o.mlpDim ?? 4096,
      m: o.m ?? 0.99,
      T: o.T ?? 1.0,
      cifarStem: o.cifarStem ?? false,
      width: o.width ?? 64,
      imageSize: o.imageSize ?? 224,
      patchSize: o.patchSize ?? 16,
      vitDepth: o.vitDepth ?? 0,
      stopGradConv1: o.stopGradConv1 ?? false,
    };
    const { dim, mlpDim, T } = this.opts;
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`MoCoV3: dim must be a positive integer, got ${dim}`);
    if (!Number.isInteger(mlpDim) || mlpDim < 1)
      throw new RangeError(`MoCoV3: mlpDim must be a positive integer, got ${mlpDim}`);
    if (!(T > 0)) throw new RangeError(`MoCoV3: T must be > 0, got ${T}`);
    this.momentum = checkMomentum(this.opts.m);

    this.registerModule('base_encoder', this.buildEncoder());
    this.registerModule('momentum_encoder', this.buildEncoder());
    this.registerModule('predictor', mlpHead(2, dim, mlpDim, dim, this.isViT));
    // The momentum encoder starts as a copy of the base encoder's parameters and is never trained by gradient;
    // its buffers (BN running statistics) are its own, as builder.py copies parameters only.
    noGrad(() => {
      for (const [pb, pm] of zip(this.baseEncoder.parameters(), this.momentumEncoder.parameters())) {
        pm.copy_(pb);
        pm.requiresGrad_(false);
      }
    });
    this.refreshParamLists();
  }

  /** Whether the backbone is a Vision Transformer. */
  get isViT(): boolean {
    return isViTArch(this.opts.arch);
  }

  private buildEncoder(): Backbone {
    return mocov3Encoder(this.opts);
  }

  get T(): number {
    return this.opts.T;
  }
  get dim(): number {
    return this.opts.dim;
  }
  /**
   * The momentum of the next update. main_moco.py sets it every iteration (cosineMomentum of the fractional
   * epoch with --moco-m-cos; else the constant opts.m). In [0, 1].
   */
  get m(): number {
    return this.momentum;
  }
  set m(m: number) {
    this.momentum = checkMomentum(m);
  }
  setMomentum(m: number): void {
    this.m = m;
  }

  get baseEncoder(): Backbone {
    return this.child<Backbone>('base_encoder');
  }
  get momentumEncoder(): Backbone {
    return this.child<Backbone>('momentum_encoder');
  }
  get predictor(): Sequential {
    return this.child<Sequential>('predictor');
  }
  /** The base encoder (backbone + projector): what the kNN monitor and exports use. */
  get encoderQ(): Backbone {
    return this.baseEncoder;
  }

  /** θk ← m·θk + (1−m)·θq for every parameter of the momentum encoder (its buffers are its own). */
  momentumUpdate(m: number = this.m): void {
    checkMomentum(m);
    noGrad(() => {
      foreachMul_(this.momentumParams, m);
      foreachAdd_(this.momentumParams, this.baseParams, 1 - m);
    });
  }

  /** ctr(q, k) = CE(norm(q)·norm(k)ᵀ / τ, arange(N) + N·rank) · 2τ, the keys gathered from every process first. */
  contrastiveLoss(q: Tensor, k: Tensor): { loss: Tensor; logits: Tensor; labels: Tensor; q: Tensor } {
    const qn = F.normalize(q, { dim: 1 });
    const kn = noGrad(() => {
      const local = F.normalize(k, { dim: 1 });
      return this.dist.gatherKeys ? this.dist.gatherKeys(local) : local;
    });
    const logits = qn.mm(kn.t()).div(this.T);
    const n = logits.shape[0]!;
    const offset = n * (this.dist.rank ?? 0);
    const labels = arange(offset, offset + n, 1, { dtype: 'int64' });
    return { loss: F.crossEntropy(logits, labels).mul(2 * this.T), logits, labels, q: qn };
  }

  /**
   * builder.py's forward(x1, x2, m) for the two views (N×3×H×W each): queries, the momentum update with `m`,
   * keys, and the symmetrised loss. Call once per training step, then backward the loss.
   */
  forwardPair(x1: Tensor, x2: Tensor, m: number = this.m): MoCoV3Output {
    const f1 = this.baseEncoder.features(x1);
    const q1 = this.predictor.forward(this.baseEncoder.forwardHead(f1));
    const q2 = this.predictor.forward(this.baseEncoder.forward(x2));
    // The keys: no gradient, from the encoder updated first (so θk includes this step's θq).
    const [k1, k2] = noGrad(() => {
      this.momentumUpdate(m);
      return [this.momentumEncoder.forward(x1), this.momentumEncoder.forward(x2)];
    });
    const a = this.contrastiveLoss(q1, k2);
    const b = this.contrastiveLoss(q2, k1);
    return { loss: a.loss.add(b.loss), logits: a.logits, labels: a.labels, q: a.q, features: f1.detach() };
  }

  /** MoCo v3 draws nothing per step: no key shuffle (BN is synchronised, not shuffled). */
  randomness(): StepRandomness {
    return {};
  }

  /** {@link forwardPair} of the batch's two views with the current {@link m}. */
  step(batch: StepBatch, _rnd: StepRandomness = {}): MechanismOutput {
    const [x1, x2] = batch.views as [Tensor, Tensor];
    const out = this.forwardPair(x1, x2);
    return {
      ...out,
      similarities: () => {
        // logits are cosines / τ; row i's positive is column labels[i], its negatives every other column.
        const l = out.logits.detach().mul(this.T);
        const [n, cols] = l.shape as [number, number];
        const lPos = l.gather(1, out.labels.unsqueeze(1));
        // Column j of the negatives is key j, or j + 1 from the positive's column on.
        const j = arange(0, cols - 1, 1, { dtype: 'int64' })
          .unsqueeze(0)
          .expand(n, cols - 1);
        const negCols = j.add(j.ge(out.labels.unsqueeze(1)).long());
        return { lPos, lNeg: l.gather(1, negCols) };
      },
    };
  }

  /** The base encoder's output (backbone + projector), without the predictor. */
  forward(x: Tensor): Tensor {
    return this.baseEncoder.forward(x);
  }

  /** What the optimizer trains: the base encoder's and the predictor's parameters (as model.parameters() with grad). */
  trainableParameters(): Tensor[] {
    return [...this.baseEncoder.parameters(), ...this.predictor.parameters()];
  }

  /** After a move or a layout change, the momentum update works on the new parameter tensors. */
  protected override convertTensors(fn: (t: Tensor) => Tensor): this {
    super.convertTensors(fn);
    this.refreshParamLists();
    return this;
  }

  private refreshParamLists(): void {
    this.baseParams = this.baseEncoder.parameters();
    this.momentumParams = this.momentumEncoder.parameters();
  }
}

/**
 * One MoCo v3 encoder (backbone + projector): a ResNet (zero-init residual, as main_moco.py builds it) whose `fc`
 * is the projector, 2 layers with the last BN; or a ViT whose `head` is the projector, 3 layers with the last BN.
 */
export function mocov3Encoder(o: MoCoV3Opts): Backbone {
  const {
    arch = 'resnet50',
    dim = 256,
    mlpDim = 4096,
    cifarStem = false,
    width = 64,
    imageSize = 224,
    patchSize = 16,
    vitDepth = 0,
    stopGradConv1 = false,
  } = o;
  if (isViTArch(arch)) {
    const vit = createViT(arch, {
      imgSize: imageSize,
      patchSize,
      stopGradConv1,
      ...(vitDepth > 0 ? { depth: vitDepth } : {}),
    });
    vit.replaceModule('head', mlpHead(3, vit.featureDim, mlpDim, dim, true));
    return vit;
  }
  if (stopGradConv1)
    throw new RangeError(`MoCoV3: stopGradConv1 freezes a ViT's patch projection; ${arch} is not a ViT`);
  const enc = createModel(arch, { numClasses: mlpDim, zeroInitResidual: true, cifarStem, width });
  enc.replaceModule('fc', mlpHead(2, enc.featureDim, mlpDim, dim, true));
  return enc;
}

function checkMomentum(m: number): number {
  if (!(m >= 0 && m <= 1)) throw new RangeError(`MoCoV3: m must be in [0, 1], got ${m}`);
  return m;
}

function zip<A, B>(a: A[], b: B[]): [A, B][] {
  if (a.length !== b.length) throw new Error(`zip: ${a.length} vs ${b.length} items`);
  return a.map((x, i) => [x, b[i]!]);
}
