// MoCo (He et al. 2019; v2: Chen et al. 2020), written as the paper's Algorithm 1:
//   q = normalize(f_q(x_q)); k = normalize(f_k(x_k)) without grad;
//   l_pos = q·k (N×1); l_neg = q·queue (N×K); logits = [l_pos, l_neg] / T; loss = CE(logits, 0);
//   θ_k ← m·θ_k + (1−m)·θ_q before each key forward; enqueue k, dequeue the oldest keys.
import {
  F,
  Tensor,
  cat,
  einsum,
  foreachAdd_,
  foreachMul_,
  noGrad,
  randn,
  randperm,
  tidy,
  zeros,
} from '../torch/index.js';
import { Module } from '../nn/index.js';
import type { HeadKind, ResNet } from '../models/index.js';
import { contrastiveEncoder } from './encoder.js';
import type { Mechanism, MechanismOutput, StepBatch, StepRandomness, StepRng } from './mechanism.js';

export interface MoCoOpts {
  /** Backbone architecture (torchvision name). Default 'resnet50'. */
  arch?: string;
  /** Feature dimension (dim). Default 128. */
  dim?: number;
  /** Queue size: number of negative keys (K). Default 65536. */
  K?: number;
  /** Key-encoder momentum (m). Default 0.999. */
  m?: number;
  /** Softmax temperature (T). Default 0.07 (v1); v2 uses 0.2. */
  T?: number;
  /** Projection head: 'fc' (v1) or 'mlp' (v2). Default 'fc'. */
  head?: HeadKind;
  /** 3×3 stride-1 stem without max-pool (CIFAR). Default false. */
  cifarStem?: boolean;
  /** First-stage channels of the ResNet. Default 64. */
  width?: number;
  /** BN sub-batches of SplitBatchNorm2d (one-process ShuffleBN emulation); 1 = plain BN. Default 1. */
  bnSplits?: number;
  /** Also compute the loss with the views swapped and sum (colab demo option). Default false. */
  symmetric?: boolean;
  /** Shuffle the key batch before f_k and unshuffle after (ShuffleBN). Default true. */
  shuffle?: boolean;
  /** Multi-process training's hooks (key all-gather, cross-process ShuffleBN); default none (one process). */
  dist?: MoCoDistHooks;
}

/**
 * Hooks for multi-process training: the cross-process ShuffleBN and the gathering of keys from every
 * process before they are enqueued (main_moco.py's _batch_shuffle_ddp and concat_all_gather).
 */
export interface MoCoDistHooks {
  /** Runs f_k on a batch shuffled across processes and returns this process's keys in the original order. */
  shuffledKeyForward?: (encode: (x: Tensor) => Tensor, xk: Tensor) => Tensor;
  /** The keys of every process, concatenated in rank order. */
  gatherKeys?: (k: Tensor) => Tensor;
}

export interface MoCoOutput {
  /** N×(1+K) logits / T (for the symmetric loss: of the first direction). */
  logits: Tensor;
  /** N int64 zeros: the positive key is class 0. */
  labels: Tensor;
  /** The InfoNCE loss (summed over both directions when symmetric). */
  loss: Tensor;
  /** N×dim L2-normalised query embeddings (of the first direction), for monitoring (embedding spread). */
  q: Tensor;
  /** N×featureDim backbone features of `xq` (the first direction), detached (see MechanismOutput.features). */
  features: Tensor;
}

/**
 * Instance-discrimination accuracy as main_moco.py's accuracy(output, target, topk=(1, 5)): the percentage of
 * rows of N×(1+K) `logits` whose positive (column 0) is among the `k` largest, for each k. Ties with the
 * positive count against it (a positive equal to a negative is not ranked first). With `labels` (int64 N), row i's
 * positive is column labels[i] instead (end-to-end's N×N logits).
 */
export function instanceAccuracy(logits: Tensor, ks: readonly number[] = [1, 5], labels?: Tensor): number[] {
  return noGrad(() =>
    tidy(() => {
      // The positive's rank: how many logits of its row are at least as large, besides itself.
      const pos = labels ? logits.gather(1, labels.unsqueeze(1)) : logits.narrow(1, 0, 1);
      const rank = logits.ge(pos).sum({ dim: 1 }).sub(1);
      return ks.map((k) => rank.lt(k).float().mean().item() * 100);
    }),
  );
}

/** The MoCo model: query and key encoders and the queue. State-dict keys match the official code's. */
export class MoCo extends Module implements Mechanism {
  readonly mechanism = 'moco' as const;
  readonly viewsPerImage = 2 as const;
  readonly opts: Required<Omit<MoCoOpts, 'dist'>>;
  dist: MoCoDistHooks;
  private qParams: Tensor[] = [];
  private kParams: Tensor[] = [];

  constructor(o: MoCoOpts = {}) {
    super();
    this.dist = o.dist ?? {};
    this.opts = {
      arch: o.arch ?? 'resnet50',
      dim: o.dim ?? 128,
      K: o.K ?? 65536,
      m: o.m ?? 0.999,
      T: o.T ?? 0.07,
      head: o.head ?? 'fc',
      cifarStem: o.cifarStem ?? false,
      width: o.width ?? 64,
      bnSplits: o.bnSplits ?? 1,
      symmetric: o.symmetric ?? false,
      shuffle: o.shuffle ?? true,
    };
    const { dim, K, m, T } = this.opts;
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`MoCo: dim must be a positive integer, got ${dim}`);
    if (!Number.isInteger(K) || K < 1) throw new RangeError(`MoCo: K must be a positive integer, got ${K}`);
    if (!(m >= 0 && m < 1)) throw new RangeError(`MoCo: m must be in [0, 1), got ${m}`);
    if (!(T > 0)) throw new RangeError(`MoCo: T must be > 0, got ${T}`);

    this.registerModule('encoder_q', this.buildEncoder());
    this.registerModule('encoder_k', this.buildEncoder());
    noGrad(() => {
      for (const [pq, pk] of this.paramPairs()) {
        pk.copy_(pq);
        pk.requiresGrad_(false);
      }
      for (const [[, bq], [, bk]] of zip(this.encoderQ.namedBuffers(), this.encoderK.namedBuffers())) bk.copy_(bq);
    });
    this.registerBuffer(
      'queue',
      noGrad(() => tidy(() => F.normalize(randn([dim, K]), { dim: 0 }))),
    );
    this.registerBuffer('queue_ptr', zeros([1], { dtype: 'int64' }));
    this.qParams = this.encoderQ.parameters();
    this.kParams = this.encoderK.parameters();
  }

  private buildEncoder(): ResNet {
    return contrastiveEncoder(this.opts);
  }

  get dim(): number {
    return this.opts.dim;
  }
  get K(): number {
    return this.opts.K;
  }
  get m(): number {
    return this.opts.m;
  }
  get T(): number {
    return this.opts.T;
  }
  get symmetric(): boolean {
    return this.opts.symmetric;
  }
  get shuffle(): boolean {
    return this.opts.shuffle;
  }

  get encoderQ(): ResNet {
    return this.child<ResNet>('encoder_q');
  }
  get encoderK(): ResNet {
    return this.child<ResNet>('encoder_k');
  }
  /** dim × K keys, each column L2-normalised. */
  get queue(): Tensor {
    return this.tensor('queue')!;
  }
  get queuePtr(): number {
    return this.tensor('queue_ptr')!.item();
  }

  private paramPairs(): [Tensor, Tensor][] {
    return zip(this.encoderQ.parameters(), this.encoderK.parameters());
  }

  /** θ_k ← m·θ_k + (1−m)·θ_q for every parameter (buffers are the key encoder's own, as in the official code). */
  momentumUpdate(): void {
    noGrad(() => {
      foreachMul_(this.kParams, this.m);
      foreachAdd_(this.kParams, this.qParams, 1 - this.m);
    });
  }

  /** Keys of the key encoder for `xk`: shuffled before f_k and unshuffled after (ShuffleBN), normalised, no grad. */
  keys(xk: Tensor, perm?: Tensor): Tensor {
    return noGrad(() =>
      tidy(() => {
        const encode = (x: Tensor): Tensor => this.encoderK.forward(x);
        if (this.dist.shuffledKeyForward) return F.normalize(this.dist.shuffledKeyForward(encode, xk), { dim: 1 });
        if (!this.shuffle) return F.normalize(encode(xk), { dim: 1 });
        const idxShuffle = perm ?? randperm(xk.shape[0]!);
        const idxUnshuffle = idxShuffle.argsort();
        const k = F.normalize(encode(xk.indexSelect(0, idxShuffle)), { dim: 1 });
        return k.indexSelect(0, idxUnshuffle);
      }),
    );
  }

  /** The contrastive loss of queries from `xq` against keys `k` and the queue. */
  contrastive(xq: Tensor, k: Tensor): { logits: Tensor; loss: Tensor; q: Tensor; features: Tensor } {
    const f = this.encoderQ.features(xq);
    const q = F.normalize(this.encoderQ.forwardHead(f), { dim: 1 });
    const lPos = einsum('nc,nc->n', q, k).unsqueeze(-1);
    // A snapshot: the queue is overwritten by this step's keys before backward needs it.
    const lNeg = einsum('nc,ck->nk', q, this.queue.clone());
    const logits = cat([lPos, lNeg], 1).div(this.T);
    const labels = zeros([logits.shape[0]!], { dtype: 'int64' });
    return { logits, loss: F.crossEntropy(logits, labels), q, features: f.detach() };
  }

  /**
   * One MoCo forward for a batch of query views `xq` and key views `xk` (N×3×H×W each): momentum update,
   * keys, logits and loss. Enqueues the keys (so call it once per training step). Backward the returned loss.
   */
  forwardPair(xq: Tensor, xk: Tensor, rnd: StepRandomness = {}): MoCoOutput {
    this.momentumUpdate();
    if (!this.symmetric) {
      const k = this.keys(xk, rnd.keyPerm);
      const { logits, loss, q, features } = this.contrastive(xq, k);
      this.dequeueAndEnqueue(k);
      return { logits, labels: zeros([logits.shape[0]!], { dtype: 'int64' }), loss, q, features };
    }
    const k2 = this.keys(xk, rnd.keyPerm);
    const k1 = this.keys(xq, rnd.keyPerm2);
    const a = this.contrastive(xq, k2);
    const b = this.contrastive(xk, k1);
    this.dequeueAndEnqueue(cat([k1, k2], 0));
    return {
      logits: a.logits,
      labels: zeros([a.logits.shape[0]!], { dtype: 'int64' }),
      loss: a.loss.add(b.loss),
      q: a.q,
      features: a.features,
    };
  }

  /**
   * Writes keys over the oldest queue entries (FIFO ring). A batch that does not divide K — the last partial
   * batch included — wraps around the end of the ring instead of failing like the reference's assert.
   */
  dequeueAndEnqueue(keys: Tensor): void {
    noGrad(() =>
      tidy(() => {
        const all = this.dist.gatherKeys ? this.dist.gatherKeys(keys) : keys;
        const n = all.shape[0]!;
        if (n > this.K)
          throw new Error(
            `MoCo: ${n} keys in one step exceed the queue size K=${this.K}; use a larger --moco-k or a smaller batch`,
          );
        const ptr = this.queuePtr;
        const first = Math.min(n, this.K - ptr);
        const kt = all.t();
        this.queue.narrow(1, ptr, first).copy_(kt.narrow(1, 0, first));
        if (first < n) this.queue.narrow(1, 0, n - first).copy_(kt.narrow(1, first, n - first));
        this.tensor('queue_ptr')!.fill_((ptr + n) % this.K);
        return undefined;
      }),
    );
  }

  /** The key-batch permutation(s) of this step's ShuffleBN. */
  randomness(rng: StepRng, n: number): StepRandomness {
    return {
      keyPerm: rng.permutation('key-shuffle', n),
      keyPerm2: this.symmetric ? rng.permutation('key-shuffle-2', n) : undefined,
    };
  }

  /** {@link forwardPair} of the batch's two views. */
  step(batch: StepBatch, rnd: StepRandomness = {}): MechanismOutput {
    const [xq, xk] = batch.views as [Tensor, Tensor];
    const out = this.forwardPair(xq, xk, rnd);
    return {
      ...out,
      similarities: () => {
        // logits are l/T: the similarities themselves are logits·T.
        const l = out.logits.detach().mul(this.T);
        return { lPos: l.narrow(1, 0, 1), lNeg: l.narrow(1, 1, l.shape[1]! - 1) };
      },
    };
  }

  forward(x: Tensor): Tensor {
    return this.encoderQ.forward(x);
  }

  /** After a move or a layout change, the momentum update works on the new parameter tensors. */
  protected override convertTensors(fn: (t: Tensor) => Tensor): this {
    super.convertTensors(fn);
    this.qParams = this.encoderQ.parameters();
    this.kParams = this.encoderK.parameters();
    return this;
  }

  /** The query encoder's parameters: what the optimizer trains. */
  trainableParameters(): Tensor[] {
    return this.encoderQ.parameters();
  }
}

function zip<A, B>(a: A[], b: B[]): [A, B][] {
  if (a.length !== b.length) throw new Error(`zip: ${a.length} vs ${b.length} items`);
  return a.map((x, i) => [x, b[i]!]);
}
