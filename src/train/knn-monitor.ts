// The kNN monitor of pre-training: eval/knn-evaluate.ts's weighted kNN of the query encoder's features (train split
// as the bank, the labelled test split as queries), with the nearest neighbours of a few fixed queries to look at.
import { Tensor, tensor, tidy } from '../torch/index.js';
import { Rng, type ImageDataset } from '../data/index.js';
import type { Backbone } from '../models/index.js';
import { knnRun } from '../eval/index.js';
import type { PretrainConfig } from './config.js';

/** The weighted kNN monitor: query-encoder features (head or backbone) of the train set as the bank, the test split as queries. */
export async function knnMonitor(
  model: { encoderQ: Backbone },
  bank: ImageDataset,
  queries: ImageDataset,
  c: PretrainConfig,
): Promise<number> {
  return (await knnMonitorRun(model, bank, queries, c)).top1;
}

/** A kNN monitor evaluation with examples to look at. */
export interface KnnMonitorResult {
  /** Percent. */
  top1: number;
  /** Indices into the queries of the examples (seeded, the same at every evaluation of a run). */
  queryIdx: number[];
  /** The `neighbours` most similar bank indices of each example query, most similar first. */
  neighbours: number[][];
}

/** {@link knnMonitor}, also returning the nearest bank images of `examples` (default 8) fixed queries, 5 each. */
export async function knnMonitorRun(
  model: { encoderQ: Backbone },
  bank: ImageDataset,
  queries: ImageDataset,
  c: PretrainConfig,
  examples = 8,
): Promise<KnnMonitorResult> {
  const enc = model.encoderQ;
  const f = (x: Tensor): Tensor => ((c.knnFeature ?? 'head') === 'head' ? enc.forward(x) : enc.features(x));
  const encode = (x: Tensor): Tensor => (c.device === 'cpu' ? f(x) : f(x.to(c.device)).cpu());
  const queryIdx = new Rng(c.seed, 'knn-examples')
    .permutation(queries.length)
    .slice(0, Math.min(examples, queries.length));
  const nn = Math.min(5, bank.length);
  const { result, inspected } = await knnRun(
    enc,
    encode,
    bank,
    queries,
    { augment: c.evalAugment, augmentOpts: { size: c.imageSize }, batchSize: 512, k: c.knnK, t: c.knnT },
    (b, q) =>
      tidy(() => {
        const sel = q.indexSelect(0, tensor(Int32Array.from(queryIdx)).long());
        const flat = sel.mm(b.t()).topk(nn, 1).indices.contiguous().toArray();
        return Array.from(queryIdx, (_, r) => flat.slice(r * nn, (r + 1) * nn));
      }),
  );
  return { top1: result.top1, queryIdx: Array.from(queryIdx), neighbours: inspected };
}
