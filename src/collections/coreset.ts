// A diverse subset for labelling: the greedy k-center coreset (Gonzalez 1985; Sener & Savarese 2018) on cosine
// distance. Each pick is the row farthest from everything picked so far, so the subset covers the collection
// with a radius at most twice the best possible.
import { F, full, keep, tensor, tidy, type Tensor } from '../torch/index.js';
import { Rng } from '../data/index.js';

export interface CoresetOpts {
  /** Seed of the first pick; default 0. */
  seed?: number;
  /** 'cpu' (default) or 'cuda[:N]'. */
  device?: string;
  /** Rows already chosen (e.g. labelled before): the new picks cover what they leave. */
  already?: readonly number[];
}

export interface Coreset {
  /** Row indices in pick order. */
  picks: Int32Array;
  /** Cosine distance (1 − cos) of each pick to the earlier picks at the time it was chosen (Infinity for the first). */
  gain: Float32Array;
  /** Largest distance of any row to its nearest pick: the covering radius. */
  radius: number;
}

/** Picks `count` rows of `vectors` (n × dim, row-major) by greedy k-center. */
export function kCenterGreedy(vectors: Float32Array, dim: number, count: number, o: CoresetOpts = {}): Coreset {
  const n = vectors.length / dim;
  if (!Number.isInteger(count) || count < 1 || count > n)
    throw new Error(`select: --n must be an integer in 1…${n} (the rows), got ${count}`);
  const device = o.device ?? 'cpu';
  const x = keep(tidy(() => F.normalize(tensor(vectors, { shape: [n, dim] }).to(device), { dim: 1 })));
  let mind: Tensor = keep(full([n], Infinity, { device }));
  const picks = new Int32Array(count);
  const gain = new Float32Array(count);
  const take = (i: number): void => {
    const next = keep(
      tidy(() =>
        mind.minimum(
          x
            .mm(x.narrow(0, i, 1).t())
            .squeeze(1)
            .neg()
            .add(1),
        ),
      ),
    );
    mind.dispose();
    mind = next;
  };
  try {
    for (const i of o.already ?? []) take(i);
    for (let t = 0; t < count; t++) {
      let pick: number;
      if (t === 0 && !o.already?.length) {
        pick = new Rng(o.seed ?? 0, 'kcenter').int(0, n - 1);
        gain[t] = Infinity;
      } else {
        const r = tidy(() => {
          const m = mind.maxDim(0);
          return [m.indices.item(), m.values.item()];
        });
        pick = r[0]!;
        gain[t] = r[1]!;
      }
      picks[t] = pick;
      take(pick);
    }
    const radius = tidy(() => mind.max().item());
    return { picks, gain, radius };
  } finally {
    x.dispose();
    mind.dispose();
  }
}
