// PCA whitening fitted on the collection itself (Jégou & Chum, "Negative evidence and co-occurrences in image
// retrieval", ECCV 2012): centre on the collection's mean, rotate onto the principal axes of its covariance and
// divide each axis by the square root of its (shrunk) variance, keep the top components, then L2-normalise. The
// directions that all images of the collection share (which put unrelated images at cosines near 1) are scaled
// down, and the rarer ones, which tell two images apart, up.
import { F, callOp, noGrad, tensor, tidy, type Tensor } from '../torch/index.js';

export interface WhitenOpts {
  /**
   * Shrinkage α of the covariance towards a multiple of the identity, Σ' = (1 − α)·Σ + α·(tr Σ / d)·I, which
   * bounds how much the weakest directions are amplified; in [0, 1], default {@link DEFAULT_SHRINKAGE}.
   */
  shrinkage?: number;
  /**
   * Principal components kept (the largest); default min(dim, rows − 1), the rank the covariance can have (beyond
   * it there is only the shrinkage term).
   */
  dims?: number;
  /** Rows per block of the float64 accumulation (bounds memory); default 2²² / dim. */
  blockRows?: number;
}

/**
 * Default shrinkage of {@link fitWhitening}: none, the best of 0, 0.03, 0.1 and 0.5 on the dedup curves
 * (docs/collections.md), where the collection had ~9 rows per dimension.
 */
export const DEFAULT_SHRINKAGE = 0;

/** Rows per kept component below which `moco dedup` reduces the components (rows / ROWS_PER_DIM kept). */
export const ROWS_PER_DIM = 4;

/**
 * Components to keep when whitening `rows` vectors of `dim`: undefined (the default, all) with at least
 * {@link ROWS_PER_DIM} rows per dimension, else rows / ROWS_PER_DIM (at least 1), since a whitening fitted on too
 * few rows spreads them at equal distances. The default dedup threshold is not calibrated for the reduced case.
 */
export function whitenDims(rows: number, dim: number): number | undefined {
  return rows < ROWS_PER_DIM * dim ? Math.max(1, Math.floor(rows / ROWS_PER_DIM)) : undefined;
}

/** {@link fitWhitening} on `vectors` then {@link applyWhitening} to them: the whitened rows and their size. */
export function whitenVectors(
  vectors: Float32Array,
  dim: number,
  o: WhitenOpts = {},
): { vectors: Float32Array; dim: number } {
  const w = fitWhitening(vectors, dim, o);
  return { vectors: applyWhitening(w, vectors), dim: w.outDim };
}

/** A fitted whitening: y = P·(x − mean), P = diag(λ'^−½)·Uᵀ over the kept components. */
export interface Whitening {
  /** Input size. */
  dim: number;
  /** Output size (components kept). */
  outDim: number;
  mean: Float32Array;
  /** outDim × dim, row-major. */
  projection: Float32Array;
  /** The shrunk eigenvalues of the kept components, largest first. */
  eigenvalues: Float32Array;
}

/**
 * Fits the whitening on `vectors` (rows × dim, row-major); needs at least 2 rows. Computed in float64. With few
 * rows per dimension it is meaningless: n rows whitened in n − 1 components sit at equal distances from each
 * other (callers should keep `dims` well below rows; `moco dedup` keeps at most rows / {@link ROWS_PER_DIM}).
 */
export function fitWhitening(vectors: Float32Array, dim: number, o: WhitenOpts = {}): Whitening {
  const n = vectors.length / dim;
  if (!Number.isInteger(n) || n < 2)
    throw new Error(`fitWhitening: need at least 2 rows of ${dim}, got ${vectors.length} values`);
  const alpha = o.shrinkage ?? DEFAULT_SHRINKAGE;
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`fitWhitening: shrinkage must be in [0, 1], got ${alpha}`);
  const k = o.dims ?? Math.min(dim, n - 1);
  if (!(Number.isInteger(k) && k >= 1 && k <= dim))
    throw new Error(`fitWhitening: dims must be an integer in [1, ${dim}], got ${k}`);
  // Mean, then the scatter matrix, accumulated in float64 over blocks of rows (memory: one block, not n × dim).
  const block = o.blockRows ?? Math.max(1, Math.floor(2 ** 22 / dim));
  const rowsOf = (i: number): ReturnType<typeof tensor> =>
    tensor(vectors.subarray(i * dim, Math.min(n, i + block) * dim), { shape: [Math.min(block, n - i), dim] }).double();
  const meanAcc = new Float64Array(dim);
  for (let i = 0; i < n; i += block) {
    const part = tidy(() => Float64Array.from(rowsOf(i).sum({ dim: 0 }).data() as Float64Array));
    for (let j = 0; j < dim; j++) meanAcc[j]! += part[j]!;
  }
  for (let j = 0; j < dim; j++) meanAcc[j]! /= n;
  const cov = new Float64Array(dim * dim);
  for (let i = 0; i < n; i += block) {
    const part = tidy(() =>
      noGrad(() => {
        const xc = rowsOf(i).sub(tensor(meanAcc, { shape: [1, dim] }));
        return Float64Array.from(xc.t().mm(xc).data() as Float64Array);
      }),
    );
    for (let j = 0; j < dim * dim; j++) cov[j]! += part[j]! / (n - 1);
  }
  return tidy(() =>
    noGrad(() => {
      let avg = 0;
      for (let i = 0; i < dim; i++) avg += cov[i * (dim + 1)]! / dim;
      for (let i = 0; i < dim * dim; i++) cov[i]! *= 1 - alpha;
      for (let i = 0; i < dim; i++) cov[i * (dim + 1)]! += alpha * avg;
      const [evals, evecs] = callOp('aten::linalg_eigh', '', [tensor(cov, { shape: [dim, dim] }), 'L']) as Tensor[]; // ascending
      const lam = Float64Array.from(evals!.data() as Float64Array);
      const u = evecs!.data() as Float64Array; // dim × dim, column j = eigenvector j
      const floor = Math.max(avg * 1e-12, Number.MIN_VALUE);
      const projection = new Float32Array(k * dim);
      const eigenvalues = new Float32Array(k);
      for (let r = 0; r < k; r++) {
        const j = dim - 1 - r;
        const l = Math.max(lam[j]!, floor);
        eigenvalues[r] = l;
        const s = 1 / Math.sqrt(l);
        // Sign convention: the largest coordinate of each axis positive (eigh's signs are arbitrary).
        let big = 0;
        for (let i = 0; i < dim; i++) if (Math.abs(u[i * dim + j]!) > Math.abs(u[big * dim + j]!)) big = i;
        const sign = u[big * dim + j]! < 0 ? -1 : 1;
        for (let i = 0; i < dim; i++) projection[r * dim + i] = sign * s * u[i * dim + j]!;
      }
      return { dim, outDim: k, mean: Float32Array.from(meanAcc), projection, eigenvalues };
    }),
  );
}

/**
 * Applies `w` to `vectors` (rows × w.dim): rows × w.outDim, L2-normalised (for cosine), computed `blockRows` rows
 * at a time (default 2²² / dim). Returns a new array.
 */
export function applyWhitening(w: Whitening, vectors: Float32Array, blockRows?: number): Float32Array {
  const n = vectors.length / w.dim;
  const out = new Float32Array(n * w.outDim);
  const block = blockRows ?? Math.max(1, Math.floor(2 ** 22 / Math.max(w.dim, w.outDim)));
  tidy(() =>
    noGrad(() => {
      const p = tensor(w.projection, { shape: [w.outDim, w.dim] }).t();
      const mu = tensor(w.mean, { shape: [1, w.dim] });
      for (let i = 0; i < n; i += block) {
        const m = Math.min(block, n - i);
        tidy(() => {
          const y = tensor(vectors.subarray(i * w.dim, (i + m) * w.dim), { shape: [m, w.dim] })
            .sub(mu)
            .mm(p);
          out.set(F.normalize(y).data() as Float32Array, i * w.outDim);
        });
      }
    }),
  );
  return out;
}
