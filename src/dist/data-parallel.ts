// Data parallelism as DistributedDataParallel does it, and MoCo's two cross-process steps (main_moco.py's
// concat_all_gather and _batch_shuffle_ddp/_batch_unshuffle_ddp), on a ProcessGroup.
import { Tensor, cat, empty, noGrad, randperm, tidy, zerosLike } from '../torch/index.js';
import type { ProcessGroup } from './process-group.js';

/** DDP's default bucket: 25 MiB. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** Splits tensors into runs of one dtype and at most `bucketBytes` (a larger tensor gets a bucket of its own). */
function buckets(ts: Tensor[], bucketBytes: number): Tensor[][] {
  const out: Tensor[][] = [];
  let cur: Tensor[] = [];
  let bytes = 0;
  for (const t of ts) {
    const b = t.nbytes;
    if (cur.length && (cur[0]!.dtype !== t.dtype || bytes + b > bucketBytes)) { out.push(cur); cur = []; bytes = 0; }
    cur.push(t);
    bytes += b;
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Flattens each bucket into one tensor, runs `reduce` on it, and copies the result back into the tensors. */
async function flatInPlace(ts: Tensor[], bucketBytes: number, reduce: (flat: Tensor) => Promise<void>): Promise<void> {
  for (const group of buckets(ts, bucketBytes)) {
    const flat = noGrad(() => cat(group.map((t) => t.detach().reshape(-1)), 0));
    try {
      await reduce(flat);
      noGrad(() => tidy(() => {
        let off = 0;
        for (const t of group) {
          const n = t.numel();
          t.copy_(flat.narrow(0, off, n).view(...t.shape));
          off += n;
        }
        return undefined;
      }));
    } finally {
      flat.dispose();
    }
  }
}

/**
 * Overwrites every parameter and buffer of `modules` with rank `root`'s, in flat buckets (what DDP does at
 * construction), so that all ranks start from identical weights, queue and counters.
 */
export async function broadcastState(pg: ProcessGroup, tensors: Tensor[], opts: { root?: number; bucketBytes?: number } = {}): Promise<void> {
  await flatInPlace(tensors, opts.bucketBytes ?? DEFAULT_BUCKET_BYTES, (flat) => pg.broadcast(flat, opts.root ?? 0));
}

/**
 * Averages the gradients of `params` over all ranks after backward, in flat buckets of `bucketBytes` (default
 * 25 MiB), as DDP: each rank then takes the same optimizer step. A parameter without a gradient counts as zeros.
 */
export async function allReduceGradients(pg: ProcessGroup, params: Tensor[], opts: { bucketBytes?: number } = {}): Promise<void> {
  if (pg.worldSize === 1) return;
  const grads = params.map((p) => {
    const g = p.grad;
    if (g) return g;
    const z = noGrad(() => zerosLike(p));
    p.grad = z;
    return z;
  });
  await flatInPlace(grads, opts.bucketBytes ?? DEFAULT_BUCKET_BYTES, (flat) => pg.allReduce(flat, 'avg'));
}

/** {@link allReduceGradients} waiting on the JS thread, for training loops that step synchronously. */
export function allReduceGradientsSync(pg: ProcessGroup, params: Tensor[], opts: { bucketBytes?: number } = {}): void {
  if (pg.worldSize === 1) return;
  const grads = params.map((p) => p.grad ?? (p.grad = noGrad(() => zerosLike(p))));
  for (const group of buckets(grads, opts.bucketBytes ?? DEFAULT_BUCKET_BYTES)) {
    const flat = noGrad(() => cat(group.map((t) => t.reshape(-1)), 0));
    pg.allReduceSync(flat, 'avg');
    noGrad(() => tidy(() => {
      let off = 0;
      for (const t of group) { t.copy_(flat.narrow(0, off, t.numel()).view(...t.shape)); off += t.numel(); }
      return undefined;
    }));
    flat.dispose();
  }
}

/**
 * What a MoCo model accepts for multi-process training (structurally MoCo's MoCoDistHooks, and MoCo v3's
 * MoCoV3DistHooks: gatherKeys and rank).
 */
export interface MoCoDistHooks {
  shuffledKeyForward?: (encode: (x: Tensor) => Tensor, xk: Tensor) => Tensor;
  gatherKeys?: (k: Tensor) => Tensor;
  /** This process's rank: MoCo v3's row i has its positive at gathered key N·rank + i. */
  rank?: number;
  /** A differentiable sum over the processes: MoCo v3 normalises its BatchNorms with it (SyncBatchNorm). */
  crossProcessSum?: (t: Tensor) => Tensor;
}

export interface MoCoHookOpts {
  /** Cross-process ShuffleBN. Default true. Off: each rank encodes its own keys (per-process BN). */
  shuffle?: boolean;
  /** Draws rank 0's permutation of the global key batch; default torch.randperm from the default generator. */
  permutation?: (n: number) => Tensor;
  /** Called with each step's global permutation (int64, identical on all ranks), for tests and logging. */
  onPermutation?: (perm: Tensor) => void;
}

/**
 * MoCo's hooks for a multi-process run: keys gathered from all ranks before enqueue (so every rank holds the
 * identical queue), and ShuffleBN across ranks exactly as main_moco.py: gather the key images, rank 0 draws a
 * permutation and broadcasts it, each rank encodes its slice of the shuffled batch (BN statistics over a mix
 * of ranks' samples), then the keys are gathered and unshuffled back to their owners.
 */
export function mocoDistHooks(pg: ProcessGroup, o: MoCoHookOpts = {}): MoCoDistHooks {
  const hooks: MoCoDistHooks = {
    gatherKeys: (k) => pg.allGatherCatSync(k.contiguous()),
    rank: pg.rank,
    crossProcessSum: (t) => pg.allReduceSumGradSync(t),
  };
  if (o.shuffle === false) return hooks;
  hooks.shuffledKeyForward = (encode, xk) => tidy(() => {
    // _batch_shuffle_ddp
    const xAll = pg.allGatherCatSync(xk.contiguous());
    const nThis = xk.shape[0]!;
    const nAll = xAll.shape[0]!;
    if (nAll !== nThis * pg.worldSize) throw new Error(`ShuffleBN: every rank needs the same batch size (this rank: ${nThis}, all: ${nAll})`);
    // Drawn on the CPU generator as main_moco.py (torch.randperm(n).cuda()), then on the images' device: NCCL
    // only moves CUDA tensors, and indexSelect wants the index beside the data.
    const device = xk.device;
    const drawn = pg.rank === 0 ? (o.permutation ?? ((n: number) => randperm(n)))(nAll) : empty([nAll], { dtype: 'int64' });
    const idxShuffle = drawn.device === device ? drawn : drawn.to(device);
    pg.broadcastSync(idxShuffle, 0);
    o.onPermutation?.(idxShuffle);
    const idxUnshuffle = idxShuffle.argsort();
    const idxThis = idxShuffle.narrow(0, pg.rank * nThis, nThis);
    const k = encode(xAll.indexSelect(0, idxThis));
    // _batch_unshuffle_ddp
    const kAll = pg.allGatherCatSync(k.contiguous());
    return kAll.indexSelect(0, idxUnshuffle.narrow(0, pg.rank * nThis, nThis));
  });
  return hooks;
}

/** The pieces a training loop needs to run as one rank (the loop calls them; see docs/distributed.md). */
export interface DistributedTraining {
  rank: number;
  worldSize: number;
  /** Only rank 0 writes checkpoints, logs and progress. */
  isMain: boolean;
  /** Per-process batch for a global batch (main_moco.py: batch_size / world size). */
  localBatch(globalBatch: number): number;
  /** Before the first step: everyone takes rank 0's weights, queue and counters (also after a resume on any world size). */
  syncState(tensors: Tensor[]): Promise<void>;
  /** MoCo's hooks (key all-gather and this rank; cross-process ShuffleBN unless shuffle is false; MoCo v3 shuffles nothing). */
  hooks(shuffle: boolean): MoCoDistHooks;
  /** After backward, before the optimizer step. */
  afterBackward(params: Tensor[]): void;
}

export function distributedTraining(pg: ProcessGroup, o: { bucketBytes?: number } = {}): DistributedTraining {
  return {
    rank: pg.rank,
    worldSize: pg.worldSize,
    isMain: pg.isMain,
    localBatch: (b) => {
      if (b % pg.worldSize) throw new RangeError(`the batch size ${b} does not divide by the world size ${pg.worldSize}`);
      return b / pg.worldSize;
    },
    syncState: (ts) => broadcastState(pg, ts, o),
    hooks: (shuffle) => mocoDistHooks(pg, { shuffle }),
    afterBackward: (params) => allReduceGradientsSync(pg, params, o),
  };
}
