// A decoded dataset's pixels, read a batch of rows at a time: one uint8 tensor in memory (CIFAR's binary files,
// synthetic sets, an uncached decode), or the rows of a decode-cache file read when their batch is built. The
// file keeps a decoded dataset out of the process's memory: the page cache holds it for the kernel to share and
// reclaim, so a run's footprint does not grow with the dataset (docs/benchmarks.md, peak RSS).
import { closeSync, openSync, readSync } from 'node:fs';
import { tensor, tidy, type Tensor } from '../torch/index.js';

/** N×3×H×W uint8 images, addressed by row. */
export interface DecodedImages {
  /** [N, 3, H, W]. */
  readonly shape: readonly [number, number, number, number];
  /** The images at `indices`, in that order, as one |indices|×3×H×W uint8 tensor (the caller owns it). */
  take(indices: ArrayLike<number>): Tensor;
  /** {@link take}'s pixels as packed bytes, row after row (for a worker thread). */
  takeBytes(indices: ArrayLike<number>): Uint8Array;
  /** Frees what it holds (the tensor it owns, or the open file). */
  dispose(): void;
}

function checkRows(indices: ArrayLike<number>, n: number): void {
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i]!;
    if (!Number.isInteger(v) || v < 0 || v >= n)
      throw new RangeError(`decoded images: row ${v} out of range for ${n} images`);
  }
}

/** Rows of an N×3×H×W uint8 tensor; disposes it only when `owned`. */
export class TensorImages implements DecodedImages {
  readonly shape: readonly [number, number, number, number];
  constructor(
    readonly images: Tensor,
    private readonly owned = false,
  ) {
    const s = images.shape;
    if (s.length !== 4 || s[1] !== 3 || images.dtype !== 'uint8')
      throw new Error(`decoded images must be N×3×H×W uint8, got [${s.join(', ')}] ${images.dtype}`);
    this.shape = s as [number, number, number, number];
  }
  take(indices: ArrayLike<number>): Tensor {
    checkRows(indices, this.shape[0]);
    return tidy(() => this.images.indexSelect(0, tensor(Int32Array.from(indices), { dtype: 'int32' }).long()));
  }
  takeBytes(indices: ArrayLike<number>): Uint8Array {
    return tidy(() => this.take(indices).data() as Uint8Array);
  }
  dispose(): void {
    if (this.owned) this.images.dispose();
  }
}

/**
 * Rows of a file holding N×3×H×W uint8 pixels from byte `offset` on (a decode-cache file). The file stays open
 * until {@link dispose}, so that the cache evicting or replacing it meanwhile does not pull it from under a run.
 */
export class FileImages implements DecodedImages {
  readonly shape: readonly [number, number, number, number];
  private fd: number | null;
  private readonly rowBytes: number;

  constructor(
    readonly file: string,
    private readonly offset: number,
    shape: readonly [number, number, number, number],
  ) {
    this.shape = shape;
    this.rowBytes = 3 * shape[2] * shape[3];
    this.fd = openSync(file, 'r');
  }

  takeBytes(indices: ArrayLike<number>): Uint8Array {
    if (this.fd === null) throw new Error(`${this.file}: decoded images already disposed`);
    checkRows(indices, this.shape[0]);
    const per = this.rowBytes;
    const out = new Uint8Array(indices.length * per);
    for (let r = 0; r < indices.length; r++) {
      const at = this.offset + indices[r]! * per;
      let got = 0;
      while (got < per) {
        const k = readSync(this.fd, out, r * per + got, per - got, at + got);
        if (k === 0)
          throw new Error(
            `${this.file}: ends early at row ${indices[r]} (the decode cache file was truncated; run \`moco cache clear\`)`,
          );
        got += k;
      }
    }
    return out;
  }

  take(indices: ArrayLike<number>): Tensor {
    return tensor(this.takeBytes(indices), {
      shape: [indices.length, 3, this.shape[2], this.shape[3]],
      dtype: 'uint8',
    });
  }

  dispose(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** 0, 1, …, n−1: the positions of a batch already taken out of its dataset. */
export function rowsOf(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}
