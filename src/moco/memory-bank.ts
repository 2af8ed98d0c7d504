// The memory-bank mechanism (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
// Discrimination"; MoCo v1 Sec. 3.2 and Fig. 3b): one L2-normalised dim-vector v_i per training image,
// initialised as random unit vectors, one view per step:
//   q = normalize(f_q(x_i)); l_pos = q·v_i (the stored vector of the same image, no gradient);
//   l_neg = q·v_j for K indices j drawn uniformly from the bank (one draw for the batch, or one per sample);
//   logits = [l_pos, l_neg] / τ; loss = CE(logits, 0);
//   then v_i ← normalize(m·v_i + (1−m)·q_i) with m = --bank-momentum (Wu et al.'s proximal update, 0.5).
import { freemem } from 'node:os';
import { F, Tensor, cat, einsum, noGrad, randint, randn, tensor, tidy, zeros } from '../torch/index.js';
import { Module } from '../nn/index.js';
import type { HeadKind, ResNet } from '../models/index.js';
import { contrastiveEncoder } from './encoder.js';
import type { Mechanism, MechanismOutput, StepBatch, StepRandomness, StepRng } from './mechanism.js';

/** How the K negatives are drawn: one set for the whole batch, or an independent set for each sample. */
export type BankSampling = 'shared' | 'per-sample';

export interface MemoryBankOpts {
  /** Images in the training set: the bank's rows. Required. */
  size: number;
  /** Backbone architecture (torchvision name). Default 'resnet50'. */
  arch?: string;
  /** Feature dimension. Default 128. */
  dim?: number;
  /** Negatives a query is contrasted with (K). Default 4096 (Wu et al.). */
  K?: number;
  /** Softmax temperature τ. Default 0.07. */
  T?: number;
  /** Weight of the old vector in the bank update v ← normalize(m·v + (1−m)·q). Default 0.5. */
  momentum?: number;
  /** 'shared' (K indices for the batch) or 'per-sample' (N×K). Default 'shared'. */
  sampling?: BankSampling;
  /** Projection head: 'fc' or 'mlp'. Default 'fc'. */
  head?: HeadKind;
  /** 3×3 stride-1 stem without max-pool (CIFAR). Default false. */
  cifarStem?: boolean;
  /** First-stage channels of the ResNet. Default 64. */
  width?: number;
  /** SplitBatchNorm2d sub-batches; 1 = plain BN. Default 1. */
  bnSplits?: number;
  /** Bytes the bank may take; default the free memory (os.freemem()) when it is built. */
  memoryLimitBytes?: number;
}

/** Bytes of a float32 bank of `size` rows of `dim`. */
export function memoryBankBytes(size: number, dim: number): number {
  return size * dim * 4;
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Instance discrimination against a bank of one stored feature per training image. */
export class MemoryBank extends Module implements Mechanism {
  readonly mechanism = 'memory-bank' as const;
  readonly viewsPerImage = 1 as const;
  readonly opts: Required<Omit<MemoryBankOpts, 'memoryLimitBytes'>>;

  constructor(o: MemoryBankOpts) {
    super();
    this.opts = {
      size: o.size,
      arch: o.arch ?? 'resnet50',
      dim: o.dim ?? 128,
      K: o.K ?? 4096,
      T: o.T ?? 0.07,
      momentum: o.momentum ?? 0.5,
      sampling: o.sampling ?? 'shared',
      head: o.head ?? 'fc',
      cifarStem: o.cifarStem ?? false,
      width: o.width ?? 64,
      bnSplits: o.bnSplits ?? 1,
    };
    const { size, dim, K, T, momentum, sampling } = this.opts;
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`MemoryBank: size (training images) must be a positive integer, got ${size}`);
    if (!Number.isInteger(dim) || dim < 1)
      throw new RangeError(`MemoryBank: dim must be a positive integer, got ${dim}`);
    if (!Number.isInteger(K) || K < 1) throw new RangeError(`MemoryBank: K must be a positive integer, got ${K}`);
    if (!(T > 0)) throw new RangeError(`MemoryBank: T must be > 0, got ${T}`);
    if (!(momentum >= 0 && momentum < 1))
      throw new RangeError(`MemoryBank: momentum must be in [0, 1), got ${momentum}`);
    if (sampling !== 'shared' && sampling !== 'per-sample')
      throw new RangeError(`MemoryBank: sampling must be 'shared' or 'per-sample', got '${String(sampling)}'`);
    const need = memoryBankBytes(size, dim);
    const limit = o.memoryLimitBytes ?? freemem();
    if (need > limit) {
      throw new Error(
        `memory bank of ${size} images × ${dim} dims (float32) needs ${mb(need)}, more than the ${mb(limit)} available${o.memoryLimitBytes === undefined ? ' (free memory now)' : ''}; use a smaller --moco-dim or --train-subset, or --mechanism moco`,
      );
    }
    this.registerModule('encoder_q', contrastiveEncoder(this.opts));
    this.registerBuffer(
      'bank',
      noGrad(() => tidy(() => F.normalize(randn([size, dim]), { dim: 1 }))),
    );
  }

  get T(): number {
    return this.opts.T;
  }
  get K(): number {
    return this.opts.K;
  }
  get encoderQ(): ResNet {
    return this.child<ResNet>('encoder_q');
  }
  /** size × dim stored features, each row L2-normalised. */
  get bank(): Tensor {
    return this.tensor('bank')!;
  }
  trainableParameters(): Tensor[] {
    return this.encoderQ.parameters();
  }
  forward(x: Tensor): Tensor {
    return this.encoderQ.forward(x);
  }

  randomness(rng: StepRng, n: number): StepRandomness {
    const shape = this.opts.sampling === 'shared' ? [this.K] : [n, this.K];
    return { negatives: rng.integers('bank-negatives', shape, this.opts.size) };
  }

  step(batch: StepBatch, rnd: StepRandomness = {}): MechanismOutput {
    const [x] = batch.views as [Tensor];
    const n = x.shape[0]!;
    if (batch.indices.length !== n)
      throw new Error(`MemoryBank: ${batch.indices.length} dataset indices for a batch of ${n} images`);
    const idx = tensor(batch.indices, { dtype: 'int32' }).long();
    const { K, dim, sampling } = this.opts;
    const neg =
      rnd.negatives ?? (sampling === 'shared' ? randint(0, this.opts.size, [K]) : randint(0, this.opts.size, [n, K]));
    const f = this.encoderQ.features(x);
    const q = F.normalize(this.encoderQ.forwardHead(f), { dim: 1 });
    // index_select copies: the positives and negatives are this step's snapshot, before the update below.
    const pos = this.bank.indexSelect(0, idx);
    const lPos = einsum('nc,nc->n', q, pos).unsqueeze(-1);
    const lNeg =
      sampling === 'shared'
        ? q.mm(this.bank.indexSelect(0, neg).t())
        : einsum('nc,nkc->nk', q, this.bank.indexSelect(0, neg.flatten()).view(n, K, dim));
    const logits = cat([lPos, lNeg], 1).div(this.T);
    const labels = zeros([n], { dtype: 'int64' });
    const loss = F.crossEntropy(logits, labels);
    this.updateBank(idx, pos, q);
    return {
      loss,
      logits,
      labels,
      q,
      features: f.detach(),
      similarities: () => ({ lPos: lPos.detach(), lNeg: lNeg.detach() }),
    };
  }

  /** v_i ← normalize(m·v_i + (1−m)·q_i) for the batch's images. */
  updateBank(idx: Tensor, old: Tensor, q: Tensor): void {
    noGrad(() =>
      tidy(() => {
        const m = this.opts.momentum;
        const v = F.normalize(old.mul(m).add(q.detach().mul(1 - m)), { dim: 1 });
        this.bank.indexPut_([idx], v);
        return undefined;
      }),
    );
  }
}
