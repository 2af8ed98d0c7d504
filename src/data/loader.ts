// Batches of augmented views from a dataset: epoch-seeded sampling (shuffled, sequential, distributed),
// dropLast, two-crop views, and prefetch of the next batches while the current step computes.
import { keep, tensor, tidy, type Tensor } from '../torch/index.js';
import { Augmentation, type AugmentSpec, type PresetName, type PresetOpts } from './augment.js';
import type { ImageDataset, ImageSource, PrepareOpts } from './datasets/dataset.js';
import { AugmentPool } from './augment-pool.js';
import type { WorkerResponse } from './augment-worker.js';
import { skipLog } from './decode.js';
import { rowsOf } from './decoded-images.js';
import { Rng } from './rng.js';

const NONE = new Int32Array(0);

export interface LoaderOpts {
  /** Samples a batch (per process). */
  batchSize: number;
  /** Shuffle every epoch (order from (seed, epoch)). Default true. */
  shuffle?: boolean;
  /** Drop the last incomplete batch. Default false. */
  dropLast?: boolean;
  /** Seed of the shuffle and of every augmentation parameter. Default 0. */
  seed?: number;
  /** Preset name, spec or pipeline. Default `'eval'`. */
  augment?: PresetName | AugmentSpec | Augmentation;
  /** Options of a preset given by name (output size, mean/std). */
  augmentOpts?: PresetOpts;
  /** Two independently augmented views a sample (MoCo's query and key). Default false. */
  twoCrops?: boolean;
  /** This process's rank and the number of processes: each gets a disjoint 1/worldSize of every epoch. Default 0, 1. */
  rank?: number;
  worldSize?: number;
  /**
   * Batches built ahead while the consumer computes. Effective for file datasets (decoding runs in libuv
   * threads) and with `workers`; in-memory batches without workers are built on demand (the work is on this
   * thread either way). Default 2.
   */
  prefetch?: number;
  /**
   * Worker threads that build batches off the main thread (like DataLoader workers), each with one libtorch
   * thread; batches are identical to those built in-thread. 0 (default) builds them on the calling thread.
   * Call {@link Loader.close} when done.
   */
  workers?: number;
  /**
   * Worker threads as `workers`, but only when the samples are read from image files; data decoded into memory
   * is augmented on the calling thread, where it is cheap. For consumers whose compute blocks this thread's
   * event loop (a training step, a forward pass), which would otherwise stall in-thread decoding. Default 0.
   */
  fileWorkers?: number;
  /**
   * What happens to a sample whose file cannot be read: 'substitute' (default) puts the next readable sample in
   * its place (the batch keeps its size; `indices` say which samples were used); 'blank' leaves it in place as a
   * mid-gray image, reported to `prepare.log`, for consumers that drop the rows of logged files (embedding).
   */
  unreadable?: 'substitute' | 'blank';
  /** How the dataset is prepared (in-memory budget, cache). */
  prepare?: PrepareOpts;
  /** Move the views to this device (e.g. `'cuda'`). Default: stay on CPU. */
  device?: string;
}

/** One batch. Call {@link Batch.dispose} when done with it. */
export interface Batch {
  /** `[q, k]` with twoCrops, else `[x]`: float32 N×3×S×S, normalised. */
  views: Tensor[];
  /** int64 N class indices, or null for unlabelled data. */
  labels: Tensor | null;
  /** Dataset indices of the samples. */
  indices: Int32Array;
  /**
   * Positions in the batch (0..N-1, ascending) whose views are mid-gray placeholders for files that could not
   * be decoded (with `unreadable: 'blank'`, or a file whose pixels failed after a good header); empty otherwise.
   */
  unreadable: Int32Array;
  epoch: number;
  /** Batch number within the epoch (this rank). */
  index: number;
  dispose(): void;
}

/**
 * Iterates a dataset in batches of augmented views. Everything random in batch b of epoch e (sample order,
 * crop boxes, jitter, …) depends only on (seed, e, b, rank), so a run resumed at (e, b) with `startBatch`
 * sees exactly the batches it would have seen.
 *
 * ```ts
 * const loader = new Loader(ds, { batchSize: 256, shuffle: true, dropLast: true, seed, augment: 'cifar', twoCrops: true });
 * for await (const batch of loader.epoch(epoch, { startBatch })) { const [q, k] = batch.views; …; batch.dispose(); }
 * ```
 */
export class Loader {
  readonly dataset: ImageDataset;
  readonly aug: Augmentation;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly views: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly prefetch: number;
  private readonly opts: LoaderOpts;
  private source: ImageSource | null = null;
  private pool: AugmentPool | null = null;
  private closed = false;

  constructor(dataset: ImageDataset, o: LoaderOpts) {
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
      throw new RangeError(`Loader: batchSize must be a positive integer, got ${o.batchSize}`);
    const world = o.worldSize ?? 1;
    const rank = o.rank ?? 0;
    if (!Number.isInteger(world) || world < 1 || !Number.isInteger(rank) || rank < 0 || rank >= world)
      throw new RangeError(`Loader: need 0 ≤ rank < worldSize, got rank ${rank}, worldSize ${world}`);
    this.dataset = dataset;
    this.opts = o;
    this.batchSize = o.batchSize;
    this.shuffle = o.shuffle ?? true;
    this.dropLast = o.dropLast ?? false;
    this.seed = o.seed ?? 0;
    this.views = o.twoCrops ? 2 : 1;
    this.rank = rank;
    this.worldSize = world;
    this.prefetch = Math.max(0, o.prefetch ?? 2);
    const a = o.augment ?? 'eval';
    this.aug = a instanceof Augmentation ? a : new Augmentation(a, o.augmentOpts);
    if ((o.workers ?? 0) > 0) this.pool = new AugmentPool(o.workers!);
  }

  /** Ends the worker threads, if any (the loader builds batches in-thread afterwards). */
  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    this.closed = true;
    await p?.close();
  }

  /** Decodes/opens the dataset (idempotent; `epoch()` calls it). Its length is final afterwards. */
  async prepare(): Promise<ImageSource> {
    this.source ??= await this.dataset.prepare(this.opts.prepare);
    if (!this.pool && !this.closed && this.source.kind === 'files' && (this.opts.fileWorkers ?? 0) > 0)
      this.pool = new AugmentPool(this.opts.fileWorkers!);
    return this.source;
  }

  /** Samples this rank sees an epoch (DistributedSampler: the order padded by wrapping, or trimmed with dropLast). */
  get samplesPerRank(): number {
    const n = this.dataset.length;
    return this.dropLast && this.worldSize > 1 ? Math.floor(n / this.worldSize) : Math.ceil(n / this.worldSize);
  }

  /** Batches an epoch on this rank (final once the dataset is prepared). */
  get batchesPerEpoch(): number {
    const m = this.samplesPerRank;
    return this.dropLast ? Math.floor(m / this.batchSize) : Math.ceil(m / this.batchSize);
  }

  /** This rank's sample order for an epoch (dataset indices). */
  order(epoch: number): Int32Array {
    const n = this.dataset.length;
    const perm = this.shuffle
      ? new Rng(this.seed, 'shuffle', epoch).permutation(n)
      : Int32Array.from({ length: n }, (_, i) => i);
    if (this.worldSize === 1) return perm;
    const m = this.samplesPerRank;
    const out = new Int32Array(m);
    for (let k = 0; k < m; k++) out[k] = perm[(this.rank + k * this.worldSize) % n]!;
    return out;
  }

  /** Dataset indices of batch `b` of an epoch. */
  batchIndices(epoch: number, b: number, order = this.order(epoch)): Int32Array {
    const start = b * this.batchSize;
    return order.slice(start, Math.min(order.length, start + this.batchSize));
  }

  /** Builds batch `b` of `epoch` (no prefetch). */
  async batch(epoch: number, b: number, order?: Int32Array): Promise<Batch> {
    const src = await this.prepare();
    const idx = this.batchIndices(epoch, b, order);
    const rng = new Rng(this.seed, 'aug', epoch, b, this.rank);
    let views: Tensor[];
    let used = idx;
    let unreadable: Int32Array = NONE;
    if (this.pool) {
      const r = await this.viaPool(this.pool, src, idx, rng);
      views = r.views;
      used = r.used;
      unreadable = r.blank;
    } else if (src.kind === 'decoded') {
      const rows = src.images.take(idx);
      views = this.aug.fromMemory(rows, rowsOf(idx.length), rng, this.views);
      rows.dispose();
    } else {
      const n = src.paths.length;
      const log = this.opts.prepare?.log;
      const r = await this.aug.fromFiles(
        (i) => src.paths[i]!,
        idx,
        rng,
        this.views,
        this.opts.unreadable === 'blank' ? { blank: true, log } : { substitute: (i) => (i + 1) % n, log },
      );
      views = r.views;
      used = r.used;
      unreadable = r.blank;
    }
    const dev = this.opts.device;
    if (dev && dev !== 'cpu')
      views = tidy(() =>
        views.map((v) => {
          const m = v.to(dev);
          v.dispose();
          return m;
        }),
      );
    views.forEach((v) => keep(v));
    const lab = this.dataset.labels;
    let labels: Tensor | null = null;
    if (lab) {
      labels = keep(
        tidy(() => {
          const t = tensor(
            Int32Array.from(used, (i) => lab[i]!),
            { dtype: 'int32' },
          ).long();
          return dev && dev !== 'cpu' ? t.to(dev) : t;
        }),
      );
    }
    return {
      views,
      labels,
      indices: used,
      unreadable,
      epoch,
      index: b,
      dispose: () => {
        for (const v of views) v.dispose();
        labels?.dispose();
      },
    };
  }

  private async viaPool(
    pool: AugmentPool,
    src: ImageSource,
    idx: Int32Array,
    rng: Rng,
  ): Promise<{ views: Tensor[]; used: Int32Array; blank: Int32Array }> {
    const S = this.aug.spec.size;
    let res: WorkerResponse;
    if (src.kind === 'decoded') {
      const [, c, h, w] = src.images.shape;
      const px = src.images.takeBytes(idx);
      res = await pool.memory(this.aug.spec, rng.state(), this.views, px, [idx.length, c, h, w]);
    } else {
      res = await pool.files(this.aug.spec, rng.state(), this.views, src.paths, idx, this.opts.unreadable === 'blank');
      const log = this.opts.prepare?.log ?? skipLog;
      for (const s of res.skipped ?? []) log.report(s.path, s.reason);
    }
    const all = tensor(res.data!, { shape: [this.views * idx.length, 3, S, S] });
    const views = tidy(() => all.chunk(this.views, 0));
    all.dispose();
    return { views, used: res.used ?? idx, blank: res.blank ?? NONE };
  }

  /**
   * The batches of an epoch from `startBatch` (default 0), with up to `prefetch` later batches in flight.
   * Breaking out of the loop disposes prefetched batches.
   */
  async *epoch(epoch: number, o: { startBatch?: number } = {}): AsyncGenerator<Batch, void, undefined> {
    const src = await this.prepare();
    // In-memory batches are built synchronously on this thread: building them early overlaps nothing.
    const ahead = src.kind === 'files' || this.pool ? this.prefetch : 0;
    const order = this.order(epoch);
    const nb = this.batchesPerEpoch;
    const pending: Promise<Batch>[] = [];
    let next = Math.max(0, o.startBatch ?? 0);
    const fill = (): void => {
      while (pending.length < ahead + 1 && next < nb) {
        const p = this.batch(epoch, next++, order);
        p.catch(() => undefined); // surfaced when awaited
        pending.push(p);
      }
    };
    try {
      fill();
      while (pending.length) {
        const b = await pending.shift()!;
        fill();
        yield b;
      }
    } finally {
      for (const p of pending)
        p.then(
          (b) => b.dispose(),
          () => undefined,
        );
    }
  }
}
