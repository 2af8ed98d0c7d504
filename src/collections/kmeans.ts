// Spherical (cosine) mini-batch k-means on libtorch tensors: k-means++ seeding on 1 − cos, Sculley's
// mini-batch update (each centroid moves towards its batch mean with a step of 1/its running count), the
// centroids renormalised after each step; then one full pass assigns every row to its nearest centroid.
// Everything random comes from a seeded Rng, so a run is reproducible, and a reference can replay it.
import { F, tensor, tidy, zeros, keep, ones, type Tensor } from '../torch/index.js';
import { Rng } from '../data/index.js';

export interface KMeansOpts {
  k: number;
  /** Seed of the k-means++ draws and of the batch order; default 0. */
  seed?: number;
  /** Rows a mini-batch; default 1024 (all rows when fewer). */
  batchSize?: number;
  /** Passes over the data in mini-batches; default 10. */
  epochs?: number;
  /** Rows k-means++ draws from (a seeded sample of the data); default 50 000. */
  initSample?: number;
  /** 'cpu' (default) or 'cuda[:N]'. */
  device?: string;
}

export interface KMeansResult {
  /** k × dim, L2-normalised, row-major. */
  centroids: Float32Array;
  /** Centroid of each row. */
  assign: Int32Array;
  /** Cosine of each row to its centroid. */
  score: Float32Array;
  /** Row indices k-means++ picked as the initial centroids. */
  init: Int32Array;
  /** Mean cosine of rows to their centroid. */
  meanCos: number;
}

/** The mini-batches of a run: epoch by epoch a seeded permutation of the rows, cut in `batchSize` pieces. */
export function batchOrder(n: number, batchSize: number, epochs: number, rng: Rng): Int32Array[] {
  const out: Int32Array[] = [];
  for (let e = 0; e < epochs; e++) {
    const p = rng.permutation(n);
    for (let i = 0; i < n; i += batchSize) out.push(p.slice(i, Math.min(n, i + batchSize)));
  }
  return out;
}

/**
 * k-means++ on cosine: the first centroid uniform, each next one drawn with probability ∝ 1 − max cos to the
 * centroids so far (= half the squared Euclidean distance of unit vectors). `x` is n × dim, normalised.
 */
export function kmeansPlusPlus(x: Tensor, k: number, rng: Rng): Int32Array {
  const n = x.shape[0]!;
  if (k > n) throw new Error(`k-means: k ${k} is more than the ${n} rows`);
  const picks = new Int32Array(k);
  picks[0] = rng.int(0, n - 1);
  let best = keep(tidy(() => x.mm(x.narrow(0, picks[0]!, 1).t()).squeeze(1)));
  try {
    for (let c = 1; c < k; c++) {
      const w = tidy(() => (best.neg().add(1).clampMin(0).data() as Float32Array).slice());
      let total = 0;
      for (const v of w) total += v;
      let r = rng.random() * total;
      let pick = n - 1;
      for (let i = 0; i < n; i++) {
        r -= w[i]!;
        if (r < 0) {
          pick = i;
          break;
        }
      }
      if (total <= 0) pick = rng.int(0, n - 1);
      picks[c] = pick;
      const next = keep(tidy(() => best.maximum(x.mm(x.narrow(0, pick, 1).t()).squeeze(1))));
      best.dispose();
      best = next;
    }
  } finally {
    best.dispose();
  }
  return picks;
}

/** Spherical mini-batch k-means of `vectors` (n × dim, row-major; normalised here). */
export function sphericalKMeans(vectors: Float32Array, dim: number, o: KMeansOpts): KMeansResult {
  const n = vectors.length / dim;
  const k = o.k;
  if (!Number.isInteger(k) || k < 1) throw new Error(`k-means: k must be a positive integer, got ${k}`);
  if (k > n) throw new Error(`k-means: k ${k} is more than the ${n} rows`);
  const device = o.device ?? 'cpu';
  const rng = new Rng(o.seed ?? 0, 'kmeans');
  const bs = Math.min(n, o.batchSize ?? 1024);
  const x = keep(tidy(() => F.normalize(tensor(vectors, { shape: [n, dim] }).to(device), { dim: 1 })));
  let c: Tensor | null = null;
  try {
    const sampleN = Math.min(n, o.initSample ?? 50_000);
    const sample = sampleN < n ? rng.permutation(n).slice(0, sampleN).sort() : null;
    const init = tidy(() => {
      const xs = sample
        ? x.indexSelect(
            0,
            tensor(sample, { shape: [sampleN] })
              .long()
              .to(device),
          )
        : x;
      const p = kmeansPlusPlus(xs, k, rng);
      return sample ? p.map((i) => sample[i]!) : p;
    });
    c = keep(
      tidy(() =>
        x
          .indexSelect(
            0,
            tensor(init, { shape: [k] })
              .long()
              .to(device),
          )
          .contiguous(),
      ),
    );
    const counts = keep(zeros([k], { device }));
    try {
      for (const b of batchOrder(n, bs, o.epochs ?? 10, rng)) {
        const next: Tensor = keep(
          tidy(() => {
            const xb = x.indexSelect(
              0,
              tensor(b, { shape: [b.length] })
                .long()
                .to(device),
            );
            const a = xb.mm(c!.t()).argmax(1);
            const sums = zeros([k, dim], { device }).scatterAdd(0, a.unsqueeze(1).expand(b.length, dim), xb);
            const nb = zeros([k], { device }).scatterAdd(0, a, ones([b.length], { device }));
            counts.add_(nb);
            // c ← c + (Σx − n_b·c) / count: the per-sample 1/count steps of Sculley (2010), summed over the batch.
            const inv = counts.clampMin(1).reciprocal().unsqueeze(1);
            const moved = c!.add(sums.sub(c!.mul(nb.unsqueeze(1))).mul(inv));
            return F.normalize(moved, { dim: 1 });
          }),
        );
        c!.dispose();
        c = next;
      }
    } finally {
      counts.dispose();
    }
    const { assign, score } = assignRows(x, c!);
    let sum = 0;
    for (const s of score) sum += s;
    return { centroids: (c!.cpu().data() as Float32Array).slice(), assign, score, init, meanCos: sum / n };
  } finally {
    x.dispose();
    c?.dispose();
  }
}

/** Nearest centroid (by cosine) of every row, in chunks of 65 536 rows. */
export function assignRows(x: Tensor, c: Tensor): { assign: Int32Array; score: Float32Array } {
  const n = x.shape[0]!;
  const assign = new Int32Array(n);
  const score = new Float32Array(n);
  const step = 65_536;
  for (let i = 0; i < n; i += step) {
    tidy(() => {
      const m = x
        .narrow(0, i, Math.min(step, n - i))
        .mm(c.t())
        .maxDim(1);
      score.set(m.values.cpu().data() as Float32Array, i);
      assign.set(m.indices.int().cpu().data() as Int32Array, i);
    });
  }
  return { assign, score };
}

/**
 * Mean cosine silhouette of an assignment over a seeded sample of at most `sample` rows: for each row,
 * (b − a) / max(a, b) with a its mean cosine distance to its own cluster's sampled rows and b the smallest mean
 * distance to another cluster's. In [−1, 1]; higher is better separated.
 */
export function silhouette(
  vectors: Float32Array,
  dim: number,
  assign: Int32Array,
  k: number,
  o: { sample?: number; seed?: number } = {},
): number {
  const n = assign.length;
  const m = Math.min(n, o.sample ?? 2000);
  const idx =
    m < n ? new Rng(o.seed ?? 0, 'silhouette').permutation(n).slice(0, m) : Int32Array.from({ length: n }, (_, i) => i);
  return tidy(() => {
    const xs = F.normalize(tensor(vectors, { shape: [n, dim] }).indexSelect(0, tensor(idx, { shape: [m] }).long()), {
      dim: 1,
    });
    const lab = tensor(
      Int32Array.from(idx, (i) => assign[i]!),
      { shape: [m] },
    ).long();
    const d = xs.mm(xs.t()).neg().add(1);
    const onehot = zeros([m, k]).scatter(1, lab.unsqueeze(1), 1);
    const sizes = onehot.sum({ dim: 0 });
    const sumD = d.mm(onehot);
    const own = sizes.index([lab]).sub(1);
    const a = sumD.gather(1, lab.unsqueeze(1)).squeeze(1).div(own.clampMin(1));
    const meanOther = sumD
      .div(sizes.clampMin(1).unsqueeze(0))
      .add(onehot.mul(1e9))
      .add(sizes.eq(0).float().unsqueeze(0).mul(1e9));
    const b = meanOther.minDim(1).values;
    const s = b.sub(a).div(a.maximum(b).clampMin(1e-12));
    // A row alone in its cluster has silhouette 0, as in scikit-learn.
    return s.mul(own.gt(0).float()).mean().item();
  });
}

/** Cluster purity against labels: the share of rows whose cluster's most common label is theirs. */
export function purity(assign: Int32Array, labels: readonly (string | null)[]): number {
  const byCluster = new Map<number, Map<string, number>>();
  assign.forEach((c, i) => {
    const m = byCluster.get(c) ?? new Map<string, number>();
    const l = labels[i] ?? '';
    m.set(l, (m.get(l) ?? 0) + 1);
    byCluster.set(c, m);
  });
  let hit = 0;
  for (const m of byCluster.values()) hit += Math.max(...m.values());
  return assign.length ? hit / assign.length : 0;
}

/** One k tried by {@link chooseK}. */
export interface KTried {
  k: number;
  /** Mean cosine silhouette of that k's clustering (see {@link silhouette}). */
  silhouette: number;
}

/**
 * The k of 2, 4, 8, … up to `kMax` (and at most rows − 1) whose clustering by {@link sphericalKMeans} (with `o`,
 * silhouette sampled with `o.seed`) has the highest mean silhouette; ties go to the smaller k. Needs at least 3
 * rows. `onTry` sees each k as it is scored.
 */
export function chooseK(
  vectors: Float32Array,
  dim: number,
  kMax: number,
  o: Omit<KMeansOpts, 'k'> = {},
  onTry?: (t: KTried) => void,
): { k: number; tried: KTried[] } {
  const n = vectors.length / dim;
  const tried: KTried[] = [];
  for (let c = 2; c <= Math.min(kMax, n - 1); c *= 2) {
    const r = sphericalKMeans(vectors, dim, { ...o, k: c });
    tried.push({ k: c, silhouette: silhouette(vectors, dim, r.assign, c, { seed: o.seed }) });
    onTry?.(tried[tried.length - 1]!);
  }
  if (!tried.length) throw new Error(`k auto needs at least 3 rows, got ${n}`);
  return { k: tried.reduce((a, b) => (b.silhouette > a.silhouette ? b : a)).k, tried };
}

/** The rows of each of `k` clusters, most central first (by `score`, the cosine to the centroid). */
export function clusterMembers(r: Pick<KMeansResult, 'assign' | 'score'>, k: number): number[][] {
  const members: number[][] = Array.from({ length: k }, () => []);
  r.assign.forEach((a, i) => members[a]!.push(i));
  for (const m of members) m.sort((a, b) => r.score[b]! - r.score[a]!);
  return members;
}
