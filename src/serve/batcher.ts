// Request batching: images of concurrent requests wait in one queue and go through the model together, one
// forward pass at a time. A batch is flushed when it is full or when its first image has waited `maxDelayMs`;
// while a forward runs, new images gather for the next. The queue is bounded: past `maxQueue` waiting images a
// request is refused at once (503 with Retry-After) instead of waiting without end.
import { unavailable } from './errors.js';

export interface BatcherOptions {
  /** Most images one forward pass takes; 1 turns batching off. Default 32. */
  maxBatch?: number;
  /** Longest wait of the first image of a batch before it is flushed anyway, milliseconds; default 5. */
  maxDelayMs?: number;
  /** Most images waiting (not yet in a forward pass); default 256. */
  maxQueue?: number;
}

interface Item {
  x: Float32Array;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

/** Counters for /v1/info and benches. */
export interface BatcherStats {
  batches: number;
  images: number;
  largestBatch: number;
  rejected: number;
}

export class Batcher {
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly maxQueue: number;
  private readonly queue: Item[] = [];
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private idle: (() => void)[] = [];
  readonly stats: BatcherStats = { batches: 0, images: 0, largestBatch: 0, rejected: 0 };

  /**
   * @param run the forward pass: `n` inputs of `itemSize` floats each, concatenated → n × dim outputs
   * @param itemSize floats per input (3 × size × size)
   * @param dim floats per output
   */
  constructor(
    private readonly run: (x: Float32Array, n: number) => Promise<Float32Array>,
    private readonly itemSize: number,
    private readonly dim: number,
    o: BatcherOptions = {},
  ) {
    this.maxBatch = Math.max(1, o.maxBatch ?? 32);
    this.maxDelayMs = Math.max(0, o.maxDelayMs ?? 5);
    this.maxQueue = Math.max(1, o.maxQueue ?? 256);
  }

  /** A forward pass is running. */
  get busy(): boolean {
    return this.running;
  }

  /** Images waiting for a forward pass. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Queues the inputs of one request (each `itemSize` floats) and resolves with their outputs, in order.
   * Throws a 503 HttpError at once when they do not fit in the queue.
   */
  submit(inputs: Float32Array[]): Promise<Float32Array[]> {
    if (this.queue.length + inputs.length > this.maxQueue) {
      this.stats.rejected++;
      throw unavailable(
        `embedding queue is full (${this.queue.length} of ${this.maxQueue} images waiting); retry shortly`,
        1,
      );
    }
    const ps = inputs.map((x) => {
      if (x.length !== this.itemSize)
        throw new Error(`batcher: input of ${x.length} floats, ${this.itemSize} expected`);
      return new Promise<Float32Array>((resolve, reject) => this.queue.push({ x, resolve, reject }));
    });
    this.schedule();
    return Promise.all(ps);
  }

  private schedule(): void {
    if (this.running || !this.queue.length) return;
    if (this.queue.length >= this.maxBatch || this.maxDelayMs === 0) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.flush();
    }, this.maxDelayMs);
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.running || !this.queue.length) return;
    const items = this.queue.splice(0, this.maxBatch);
    this.running = true;
    const n = items.length;
    const x = new Float32Array(n * this.itemSize);
    items.forEach((it, i) => x.set(it.x, i * this.itemSize));
    this.stats.batches++;
    this.stats.images += n;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, n);
    this.run(x, n)
      .then(
        (y) => {
          items.forEach((it, i) => it.resolve(y.slice(i * this.dim, (i + 1) * this.dim)));
        },
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          for (const it of items) it.reject(err);
        },
      )
      .finally(() => {
        this.running = false;
        // Images that arrived during the forward pass have waited already: flush them without the delay.
        if (this.queue.length) this.flush();
        else for (const f of this.idle.splice(0)) f();
      });
  }

  /** Resolves when nothing waits and no forward pass runs. */
  drain(): Promise<void> {
    if (!this.running && !this.queue.length) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }
}
