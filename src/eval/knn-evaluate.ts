// The weighted kNN monitor as an evaluation of a loaded encoder: the training split's L2-normalised features are
// the bank, the test split's the queries (knn.ts has the classifier itself).
import type { ImageDataset } from '../data/index.js';
import type { Encoder, FeatureKind } from './encoder.js';
import { extractFeatures } from './features.js';
import { knnClassify, type KnnResult } from './knn.js';

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
  const pre = encoder.preprocess();
  const enc = (x: Parameters<Encoder['encode']>[0]): ReturnType<Encoder['encode']> => encoder.encode(x, feature);
  const b = await extractFeatures(enc, bank, {
    ...pre,
    batchSize: o.batchSize,
    onProgress: (d, n) => o.onProgress?.('bank', d, n),
  });
  try {
    const q = await extractFeatures(enc, queries, {
      ...pre,
      batchSize: o.batchSize,
      onProgress: (d, n) => o.onProgress?.('queries', d, n),
    });
    try {
      if (!b.labels || !q.labels) throw new Error('kNN evaluation needs labelled train and test data');
      const classes = bank.classes ?? null;
      const r = knnClassify(b.features, b.labels, q.features, q.labels, { k, t, numClasses: classes?.length });
      return {
        ...r,
        k,
        t,
        feature,
        bankSize: bank.length,
        queries: queries.length,
        classes,
        seconds: (performance.now() - t0) / 1000,
      };
    } finally {
      q.features.dispose();
      q.labels?.dispose();
    }
  } finally {
    b.features.dispose();
    b.labels?.dispose();
  }
}
