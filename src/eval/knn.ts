// The weighted kNN classifier of the MoCo CIFAR demo (after Wu et al. 2018): cosine similarity to a bank of
// L2-normalised train features, top-k neighbours, votes weighted by exp(sim / t).
import { Tensor, noGrad, tidy, zeros } from '../torch/index.js';

export interface KnnOpts {
  /** Neighbours; default 200. */
  k?: number;
  /** Temperature of the vote weights exp(sim / t); default 0.1. */
  t?: number;
  /** Queries per chunk (memory: chunk × bank similarities); default 1000. */
  chunk?: number;
  /** Number of classes; default max label + 1. */
  numClasses?: number;
}

export interface KnnResult {
  /** Percent. */
  top1: number;
  /** Percent (top-5 of the weighted vote scores). */
  top5: number;
  /** Predicted class per query. */
  predictions: Int32Array;
  /** Per-class accuracy in percent (NaN for a class with no queries). */
  perClass: number[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
}

/** Vote scores (Q × C) of the kNN classifier for normalised query features against a normalised bank. */
export function knnScores(
  queries: Tensor,
  bank: Tensor,
  bankLabels: Tensor,
  numClasses: number,
  k: number,
  t: number,
): Tensor {
  return noGrad(() =>
    tidy(() => {
      const sim = queries.mm(bank.t());
      const { values, indices } = sim.topk(Math.min(k, bank.shape[0]!), 1);
      const neighbourLabels = bankLabels.indexSelect(0, indices.flatten()).view(...indices.shape);
      const weights = values.div(t).exp();
      return zeros([queries.shape[0]!, numClasses]).scatterAdd(1, neighbourLabels, weights);
    }),
  );
}

/** Classifies `queries` by weighted kNN over `bank` and scores it against `queryLabels`. */
export function knnClassify(
  bank: Tensor,
  bankLabels: Tensor,
  queries: Tensor,
  queryLabels: Tensor,
  o: KnnOpts = {},
): KnnResult {
  const k = o.k ?? 200;
  const t = o.t ?? 0.1;
  if (!(k >= 1)) throw new RangeError(`knn: k must be ≥ 1, got ${k}`);
  if (!(t > 0)) throw new RangeError(`knn: t must be > 0, got ${t}`);
  const bl = bankLabels.long();
  const C = o.numClasses ?? Math.max(bl.max().item(), queryLabels.max().item()) + 1;
  const chunk = o.chunk ?? 1000;
  const nq = queries.shape[0]!;
  const truth = Int32Array.from(queryLabels.toArray());
  const predictions = new Int32Array(nq);
  const confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
  let top1 = 0;
  let top5 = 0;
  for (let s = 0; s < nq; s += chunk) {
    const n = Math.min(chunk, nq - s);
    const ranked = tidy(() =>
      knnScores(queries.narrow(0, s, n), bank, bl, C, k, t)
        .argsort(1, true)
        .narrow(1, 0, Math.min(5, C))
        .contiguous(),
    );
    const r = ranked.toArray();
    const w = ranked.shape[1]!;
    ranked.dispose();
    for (let i = 0; i < n; i++) {
      const y = truth[s + i]!;
      const p = r[i * w]!;
      predictions[s + i] = p;
      confusion[y]![p]!++;
      if (p === y) top1++;
      for (let j = 0; j < w; j++)
        if (r[i * w + j] === y) {
          top5++;
          break;
        }
    }
  }
  bl.dispose();
  const perClass = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total ? (100 * row[c]!) / total : NaN;
  });
  return { top1: (100 * top1) / nq, top5: (100 * top5) / nq, predictions, perClass, confusion };
}
