// The end-to-end mechanism (MoCo v1, Sec. 3.2 and Fig. 3a; SimCLR's): the keys come from the same encoder as the
// queries, with gradients through both views, and the negatives of a query are the other keys of its batch:
//   q = normalize(f_q(x_q)); k = normalize(f_q(x_k))   (shared weights, both back-propagated)
//   logits = q·kᵀ / τ (N×N); loss = CE(logits, i) — row i's positive is key i, the other N−1 keys its negatives.
// ShuffleBN as MoCo's: the key batch is permuted before f_q and unpermuted after (differentiable index_select),
// so with SplitBN a key's statistics never come from its own query's sub-batch.
// Variant --loss ntxent (SimCLR, Chen et al. 2020, Eq. 1): z = [q; k] (2N rows), each row's positive is its
// other view and its 2N−2 negatives all other rows, both views' rows in the loss (symmetric).
import { F, Tensor, arange, cat, einsum, eye, randperm } from '../torch/index.js';
import { Module } from '../nn/index.js';
import type { HeadKind, ResNet } from '../models/index.js';
import { contrastiveEncoder } from './encoder.js';
import type { Mechanism, MechanismOutput, StepBatch, StepRandomness, StepRng } from './mechanism.js';

/** End-to-end losses: MoCo v1's InfoNCE over the batch's keys, or SimCLR's NT-Xent. */
export type EndToEndLoss = 'infonce' | 'ntxent';

export interface EndToEndOpts {
  /** Backbone architecture (torchvision name). Default 'resnet50'. */
  arch?: string;
  /** Feature dimension. Default 128. */
  dim?: number;
  /** Softmax temperature τ. Default 0.07. */
  T?: number;
  /** Projection head: 'fc' or 'mlp'. Default 'fc'. */
  head?: HeadKind;
  /** 3×3 stride-1 stem without max-pool (CIFAR). Default false. */
  cifarStem?: boolean;
  /** First-stage channels of the ResNet. Default 64. */
  width?: number;
  /** SplitBatchNorm2d sub-batches; 1 = plain BN. Default 1. */
  bnSplits?: number;
  /** Shuffle the key batch before f_q and unshuffle after (ShuffleBN). Default true. */
  shuffle?: boolean;
  /** 'infonce' (N×N logits, MoCo v1's end-to-end) or 'ntxent' (SimCLR, 2N−2 negatives). Default 'infonce'. */
  loss?: EndToEndLoss;
}

/** End-to-end contrastive learning: one encoder for queries and keys, negatives from the current batch. */
export class EndToEnd extends Module implements Mechanism {
  readonly mechanism = 'end-to-end' as const;
  readonly viewsPerImage = 2 as const;
  readonly opts: Required<EndToEndOpts>;

  constructor(o: EndToEndOpts = {}) {
    super();
    this.opts = {
      arch: o.arch ?? 'resnet50',
      dim: o.dim ?? 128,
      T: o.T ?? 0.07,
      head: o.head ?? 'fc',
      cifarStem: o.cifarStem ?? false,
      width: o.width ?? 64,
      bnSplits: o.bnSplits ?? 1,
      shuffle: o.shuffle ?? true,
      loss: o.loss ?? 'infonce',
    };
    if (!(this.opts.T > 0)) throw new RangeError(`EndToEnd: T must be > 0, got ${this.opts.T}`);
    if (this.opts.loss !== 'infonce' && this.opts.loss !== 'ntxent')
      throw new RangeError(`EndToEnd: loss must be 'infonce' or 'ntxent', got '${String(this.opts.loss)}'`);
    this.registerModule('encoder_q', contrastiveEncoder(this.opts));
  }

  get T(): number {
    return this.opts.T;
  }
  get encoderQ(): ResNet {
    return this.child<ResNet>('encoder_q');
  }
  trainableParameters(): Tensor[] {
    return this.encoderQ.parameters();
  }
  forward(x: Tensor): Tensor {
    return this.encoderQ.forward(x);
  }

  randomness(rng: StepRng, n: number): StepRandomness {
    return this.opts.shuffle ? { keyPerm: rng.permutation('key-shuffle', n) } : {};
  }

  /** Keys k = normalize(f_q(x_k)) with gradient, through ShuffleBN when on. */
  keys(xk: Tensor, perm?: Tensor): Tensor {
    if (!this.opts.shuffle) return F.normalize(this.encoderQ.forward(xk), { dim: 1 });
    const p = perm ?? randperm(xk.shape[0]!);
    return F.normalize(this.encoderQ.forward(xk.indexSelect(0, p)), { dim: 1 }).indexSelect(0, p.argsort());
  }

  step(batch: StepBatch, rnd: StepRandomness = {}): MechanismOutput {
    const [xq, xk] = batch.views as [Tensor, Tensor];
    const n = xq.shape[0]!;
    const f = this.encoderQ.features(xq);
    const q = F.normalize(this.encoderQ.forwardHead(f), { dim: 1 });
    const features = f.detach();
    const k = this.keys(xk, rnd.keyPerm);
    const sim = (): { lPos: Tensor; lNeg: Tensor } => {
      const s = q.detach().mm(k.detach().t());
      // The off-diagonal of an N×N matrix: drop the first element, view as (N−1)×(N+1), drop the last column.
      return {
        lPos: einsum('nc,nc->n', q.detach(), k.detach()),
        lNeg: s
          .flatten()
          .narrow(0, 1, n * n - 1)
          .view(n - 1, n + 1)
          .narrow(1, 0, n),
      };
    };
    if (this.opts.loss === 'infonce') {
      const logits = q.mm(k.t()).div(this.T);
      const labels = arange(0, n, 1, { dtype: 'int64' });
      return { loss: F.crossEntropy(logits, labels), logits, labels, q, features, similarities: sim };
    }
    // NT-Xent: similarity of every row of z = [q; k] with every other; a row is never its own negative.
    const z = cat([q, k], 0);
    const self = eye(2 * n, undefined, { dtype: 'bool' });
    const logits = z.mm(z.t()).div(this.T).maskedFill(self, -Infinity);
    const labels = cat([arange(n, 2 * n, 1, { dtype: 'int64' }), arange(0, n, 1, { dtype: 'int64' })], 0);
    return { loss: F.crossEntropy(logits, labels), logits, labels, q, features, similarities: sim };
  }
}
