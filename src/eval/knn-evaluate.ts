// The weighted kNN monitor as an evaluation of an encoder: the training split's L2-normalised features are the
// bank, the test split's the queries (knn.ts has the classifier itself). Pre-training's monitor and `moco knn`
// both run it.
import type { Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import type { ImageDataset, PresetName, PresetOpts } from '../data/index.js';
import type { Encoder, FeatureKind } from './encoder.js';
import { extractFeatures, inEvalMode, type Features } from './features.js';
import { knnClassify, type KnnOpts, type KnnResult } from './knn.js';

export interface KnnEvaluateOpts {
  /** Neighbours; default 200 (the MoCo CIFAR demo). */
  k?: number;
  /** Vote temperature; default 0.1. */
  t?: number;
  /** Which features: the pooled backbone (default) or the projection head (the colab monitor's 128-d output). */
  feature?: FeatureKind;
  /** Images per forward; default 256. */
  batchSize?: number;
  /** Progress of the two extraction passes. */
  onProgress?: (phase: 'bank' | 'queries', done: number, total: number) => void;
}

export interface KnnEvaluation extends KnnResult {
  k: number;
  t: number;
  feature: FeatureKind;
  bankSize: number;
  queries: number;
  /** Class names, index = label, when the data has them. */
  classes: readonly string[] | null;
  seconds: number;
}

/** Options of {@link knnRun}: the extraction's preprocessing and batch, and the classifier's. */
export interface KnnRunOpts extends KnnOpts {
  /** Deterministic preprocessing preset of both passes (see {@link extractFeatures}; default 'eval'). */
  augment?: PresetName;
  augmentOpts?: PresetOpts;
  /** Images per forward; default 256. */
  batchSize?: number;
  /** Progress of the two extraction passes. */
  onProgress?: (phase: 'bank' | 'queries', done: number, total: number) => void;
}

/**
 * Extracts the features of `bank` and `queries` with `encode` (`model` in eval mode meanwhile, its mode restored
 * after; features L2-normalised) and classifies the queries by weighted kNN over the bank. `inspect` sees both
 * feature matrices (bank N × D, queries Q × D) before they are freed, for what a caller wants besides accuracy.
 */
export async function knnRun<T = undefined>(
  model: Module,
  encode: (x: Tensor) => Tensor,
  bank: ImageDataset,
  queries: ImageDataset,
  o: KnnRunOpts = {},
  inspect: (bank: Tensor, queries: Tensor) => T = () => undefined as T,
): Promise<{ result: KnnResult; inspected: T }> {
  return inEvalMode(model, async () => {
    const pass = async (ds: ImageDataset, phase: 'bank' | 'queries'): Promise<Features & { labels: Tensor }> => {
      const f = await extractFeatures(encode, ds, {
        augment: o.augment,
        augmentOpts: o.augmentOpts,
        batchSize: o.batchSize,
        onProgress: (d, n) => o.onProgress?.(phase, d, n),
      });
      if (f.labels) return { features: f.features, labels: f.labels };
      f.features.dispose();
      throw new Error(`kNN needs labelled data, but the ${phase} data has none (${ds.description})`);
    };
    const b = await pass(bank, 'bank');
    try {
      const q = await pass(queries, 'queries');
      try {
        const result = knnClassify(b.features, b.labels, q.features, q.labels, o);
        return { result, inspected: inspect(b.features, q.features) };
      } finally {
        q.features.dispose();
        q.labels.dispose();
      }
    } finally {
      b.features.dispose();
      b.labels.dispose();
    }
  });
}

/**
 * kNN accuracy of an encoder: features of `bank` (train split) and `queries` (test split), both with the
 * encoder's deterministic evaluation preprocessing and L2-normalised; weights exp(sim / t) over the k nearest.
 */
export async function knnEvaluate(
  encoder: Encoder,
  bank: ImageDataset,
  queries: ImageDataset,
  o: KnnEvaluateOpts = {},
): Promise<KnnEvaluation> {
  const t0 = performance.now();
  const feature = o.feature ?? 'backbone';
  const k = o.k ?? 200;
  const t = o.t ?? 0.1;
  encoder.dim(feature); // fails early without a head
  const classes = bank.classes ?? null;
  const { result } = await knnRun(encoder.model, (x) => encoder.encode(x, feature), bank, queries, {
    ...encoder.preprocess(),
    batchSize: o.batchSize,
    onProgress: o.onProgress,
    k,
    t,
    numClasses: classes?.length,
  });
  return {
    ...result,
    k,
    t,
    feature,
    bankSize: bank.length,
    queries: queries.length,
    classes,
    seconds: (performance.now() - t0) / 1000,
  };
}
