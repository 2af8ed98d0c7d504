// A pool of worker threads that build augmented batches off the main thread (the DataLoader-workers role).
import { Worker } from 'node:worker_threads';
import type { AugmentSpec } from './augment.js';
import type { WorkerRequest, WorkerResponse } from './augment-worker.js';
import type { RngState } from './rng.js';

type Pending = { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void };

// Distributive Omit keeps the request union's variants apart.
type DistOmit<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;

/**
 * `size` worker threads, each with the libtorch addon and one intra-op thread. Batches go to the least busy
 * worker. Workers are unref'd: an idle pool does not keep the process alive; {@link close} ends them.
 */
export class AugmentPool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private pathsSent: readonly string[] | null = null;
  private closed = false;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`AugmentPool: size must be a positive integer, got ${size}`);
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL('./augment-worker.js', import.meta.url), {
        workerData: { mocoAugmentWorker: true },
      });
      w.unref();
      w.on('message', (r: WorkerResponse) => {
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        this.busy[i]!--;
        if (this.busy.every((b) => b === 0)) this.workers.forEach((x) => x.unref());
        if (r.error) p.reject(new Error(`augmentation worker: ${r.error}`));
        else p.resolve(r);
      });
      w.on('error', (e) => {
        for (const [, p] of this.pending) p.reject(e);
        this.pending.clear();
      });
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  private send(i: number, m: DistOmit<WorkerRequest, 'id'>, transfer: ArrayBuffer[] = []): Promise<WorkerResponse> {
    if (this.closed) return Promise.reject(new Error('AugmentPool is closed'));
    const id = this.nextId++;
    const w = this.workers[i]!;
    this.busy[i]!++;
    w.ref(); // keep the process alive while work is in flight
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...m, id }, transfer);
    });
  }

  private pick(): number {
    let best = 0;
    for (let i = 1; i < this.size; i++) if (this.busy[i]! < this.busy[best]!) best = i;
    return best;
  }

  /** Views of in-memory images (the batch's uint8 N×3×H×W pixels, transferred). */
  memory(
    spec: AugmentSpec,
    rng: RngState,
    views: number,
    images: Uint8Array,
    shape: [number, number, number, number],
  ): Promise<WorkerResponse> {
    return this.send(this.pick(), { kind: 'memory', spec, rng, views, images, shape }, [images.buffer as ArrayBuffer]);
  }

  /**
   * Views of files (dataset indices into `paths`, which are sent to every worker once); unreadable files are
   * substituted by the next index, or with `blank` left as mid-gray images (listed in `skipped` either way).
   */
  async files(
    spec: AugmentSpec,
    rng: RngState,
    views: number,
    paths: readonly string[],
    indices: Int32Array,
    blank = false,
  ): Promise<WorkerResponse> {
    if (this.pathsSent !== paths) {
      this.pathsSent = paths;
      await Promise.all(this.workers.map((_, i) => this.send(i, { kind: 'paths', paths: [...paths] })));
    }
    return this.send(this.pick(), { kind: 'files', spec, rng, views, indices, ...(blank ? { blank } : {}) });
  }

  /** Ends the workers; pending batches are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all(this.workers.map((_, i) => this.send(i, { kind: 'drain' }).catch(() => undefined)));
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const [, p] of this.pending) p.reject(new Error('AugmentPool closed'));
    this.pending.clear();
  }
}
