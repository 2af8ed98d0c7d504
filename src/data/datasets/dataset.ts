// The dataset contract the loader consumes, and its two implementations: samples held as one uint8 tensor in
// memory, or as image files decoded per batch.
import { imageSize, decodeAllCached, skipLog, type SkipLog } from '../decode.js';
import { keep, tensor, tidy, type Tensor } from '../../torch/index.js';
import { FileImages, TensorImages, type DecodedImages } from '../decoded-images.js';

/** Where a prepared dataset's pixels come from. */
export type ImageSource =
  /** Decoded N×3×H×W uint8 rows, all images one size (CIFAR, synthetic, small folders), read a batch at a time. */
  | { kind: 'decoded'; images: DecodedImages }
  /** One file a sample, decoded (with crop+resize) when its batch is built. */
  | { kind: 'files'; paths: readonly string[] };

export interface PrepareOpts {
  /**
   * Decode a file dataset once into memory when its pixels fit in this many bytes and its images share one size
   * (checked on up to 64 headers). Default 2 GiB; 0 keeps files on disk.
   */
  memoryBudget?: number;
  /**
   * Larger images stay files even within the budget, so their crops are resized by sharp with antialiasing
   * (in-memory crops are bilinear without it, exact only when upsampling). Default 128 px.
   */
  maxSide?: number;
  /** Cache the decoded pixels on disk and read batches from there (see decodeAllCached). Default true. */
  cache?: boolean;
  /** Where unreadable files are reported. Default: the process-wide skip log. */
  log?: SkipLog;
}

/**
 * A labelled or unlabelled image dataset. `length`, `labels` and the source are final once {@link prepare} has
 * resolved (decoding may leave unreadable files out).
 */
export interface ImageDataset {
  /** Number of samples. */
  readonly length: number;
  /** Class names, index = label; null when unlabelled. */
  readonly classes: readonly string[] | null;
  /** Class index of each sample; null when unlabelled. */
  readonly labels: Int32Array | null;
  /** One line for logs, e.g. `ImageFolder(/data/train): 50000 images, 10 classes`. */
  readonly description: string;
  /** Makes the pixels available (may decode into memory). Idempotent. */
  prepare(o?: PrepareOpts): Promise<ImageSource>;
  /** The samples at `indices`, in that order (for subsets and splits). */
  select(indices: ArrayLike<number>): ImageDataset;
  /** Frees in-memory pixels. */
  dispose(): void;
}

function pickLabels(labels: Int32Array | null, idx: ArrayLike<number>): Int32Array | null {
  if (!labels) return null;
  const out = new Int32Array(idx.length);
  for (let i = 0; i < idx.length; i++) out[i] = labels[idx[i]!]!;
  return out;
}

function checkIndices(idx: ArrayLike<number>, n: number): void {
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= n)
      throw new RangeError(`select: index ${v} out of range for ${n} samples`);
  }
}

/** Samples held in memory as one N×3×H×W uint8 tensor (owned: disposed with the dataset). */
/**
 * The classes of labelled data: the first dataset's class names when it has them, else the largest label of all
 * `datasets` plus one (0 without labels). A loop, not Math.max(...labels): ImageNet's 1.28M labels would overflow
 * the call's arguments.
 */
export function numClassesOf(...datasets: ImageDataset[]): number {
  const named = datasets[0]?.classes?.length;
  if (named !== undefined) return named;
  let n = 0;
  for (const d of datasets) for (const l of d.labels ?? []) if (l + 1 > n) n = l + 1;
  return n;
}

export class MemoryDataset implements ImageDataset {
  readonly images: Tensor;
  readonly labels: Int32Array | null;
  readonly classes: readonly string[] | null;
  readonly name: string;

  constructor(images: Tensor, labels: Int32Array | null, classes: readonly string[] | null, name = 'MemoryDataset') {
    const s = images.shape;
    if (s.length !== 4 || s[1] !== 3 || images.dtype !== 'uint8')
      throw new Error(`${name}: images must be N×3×H×W uint8, got [${s.join(', ')}] ${images.dtype}`);
    if (labels && labels.length !== s[0]) throw new Error(`${name}: ${labels.length} labels for ${s[0]} images`);
    this.images = keep(images);
    this.labels = labels;
    this.classes = classes;
    this.name = name;
  }
  get length(): number {
    return this.images.shape[0]!;
  }
  get description(): string {
    const [, , h, w] = this.images.shape;
    return `${this.name}: ${this.length} images ${h}×${w}${this.classes ? `, ${this.classes.length} classes` : ''}`;
  }
  async prepare(): Promise<ImageSource> {
    return { kind: 'decoded', images: new TensorImages(this.images) };
  }
  select(indices: ArrayLike<number>): MemoryDataset {
    checkIndices(indices, this.length);
    const imgs = tidy(() =>
      this.images.indexSelect(0, tensor(Int32Array.from(indices as ArrayLike<number>), { dtype: 'int32' }).long()),
    );
    return new MemoryDataset(imgs, pickLabels(this.labels, indices), this.classes, this.name);
  }
  dispose(): void {
    this.images.dispose();
  }
}

/** Samples as image files; {@link prepare} may decode them once (into the decode cache, or memory) when small. */
export class FileDataset implements ImageDataset {
  private paths_: readonly string[];
  private labels_: Int32Array | null;
  private decoded: DecodedImages | null = null;
  private preparing: Promise<ImageSource> | null = null;

  constructor(
    paths: readonly string[],
    labels: Int32Array | null,
    readonly classes: readonly string[] | null,
    readonly name = 'FileDataset',
  ) {
    if (labels && labels.length !== paths.length)
      throw new Error(`${name}: ${labels.length} labels for ${paths.length} files`);
    if (!paths.length) throw new Error(`${name}: no image files found`);
    this.paths_ = paths;
    this.labels_ = labels;
  }
  get paths(): readonly string[] {
    return this.paths_;
  }
  get labels(): Int32Array | null {
    return this.labels_;
  }
  get length(): number {
    return this.paths_.length;
  }
  get description(): string {
    return `${this.name}: ${this.length} images${this.classes ? `, ${this.classes.length} classes` : ''}${this.decoded ? ` (decoded${this.decoded instanceof FileImages ? `, read from ${this.decoded.file}` : ' in memory'})` : ''}`;
  }

  prepare(o: PrepareOpts = {}): Promise<ImageSource> {
    this.preparing ??= this.doPrepare(o);
    return this.preparing;
  }

  private async doPrepare(o: PrepareOpts): Promise<ImageSource> {
    const budget = o.memoryBudget ?? 2 ** 31;
    const log = o.log ?? skipLog;
    const n = this.paths_.length;
    let size: { width: number; height: number } | null = null;
    let uniform = budget > 0;
    const probes = Math.min(n, 64);
    for (let k = 0; k < probes && uniform; k++) {
      const p = this.paths_[Math.floor((k * n) / probes)]!;
      try {
        const s = await imageSize(p);
        if (!size) size = s;
        else if (s.width !== size.width || s.height !== size.height) uniform = false;
      } catch {
        // Reported when it is decoded.
      }
    }
    const small = size !== null && Math.max(size.width, size.height) <= (o.maxSide ?? 128);
    if (uniform && size && small && n * 3 * size.width * size.height <= budget) {
      const set = await decodeAllCached(this.paths_, { size: [size.height, size.width], cache: o.cache, log });
      this.decoded = set.images;
      if (set.ok.length < n) {
        this.paths_ = Array.from(set.ok, (i) => this.paths_[i]!);
        this.labels_ = pickLabels(this.labels_, set.ok);
      }
      return { kind: 'decoded', images: set.images };
    }
    return { kind: 'files', paths: this.paths_ };
  }

  select(indices: ArrayLike<number>): FileDataset {
    checkIndices(indices, this.length);
    const paths = Array.from(indices as ArrayLike<number>, (i) => this.paths_[i]!);
    return new FileDataset(paths, pickLabels(this.labels_, indices), this.classes, this.name);
  }

  dispose(): void {
    this.decoded?.dispose();
    this.decoded = null;
    this.preparing = null;
  }
}
