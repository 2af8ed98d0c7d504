// Seeded subsets and fixed train/val splits, as index lists and as datasets.
import { Rng } from '../rng.js';
import type { ImageDataset } from './dataset.js';

/** `n` distinct indices of 0..length-1 drawn with `seed` (sorted, so the file order is kept). */
export function subsetIndices(length: number, n: number, seed = 0): Int32Array {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`subset: size must be a positive integer, got ${n}`);
  if (n >= length) return Int32Array.from({ length }, (_, i) => i);
  return new Rng(seed, 'subset').permutation(length).subarray(0, n).sort();
}

/** `--train-subset N`: a seeded random subset of `n` samples (the whole set when n ≥ its length). */
export function subset<D extends ImageDataset>(ds: D, n: number, seed = 0): ImageDataset {
  if (n >= ds.length) return ds;
  return ds.select(subsetIndices(ds.length, n, seed));
}

/**
 * A fixed split of 0..length-1 into train and val index lists (sorted), `val` a fraction in (0, 1) or a count.
 * Depends only on (length, val, seed).
 */
export function splitIndices(length: number, val: number, seed = 0): { train: Int32Array; val: Int32Array } {
  const nv = val < 1 ? Math.round(length * val) : Math.floor(val);
  if (!(val > 0) || nv < 1 || nv >= length)
    throw new RangeError(`split: val must leave both parts non-empty, got ${val} of ${length}`);
  const p = new Rng(seed, 'split').permutation(length);
  return { train: p.slice(nv).sort(), val: p.slice(0, nv).sort() };
}

/** {@link splitIndices} applied to a dataset. */
export function trainValSplit(ds: ImageDataset, val: number, seed = 0): { train: ImageDataset; val: ImageDataset } {
  const s = splitIndices(ds.length, val, seed);
  return { train: ds.select(s.train), val: ds.select(s.val) };
}
