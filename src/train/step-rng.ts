// A step's random draws, keyed by (seed, tag, epoch, batch): a resumed run draws what the uninterrupted one did.
import { Tensor, tensor, tidy } from '../torch/index.js';
import { Rng } from '../data/index.js';
import type { StepRng } from '../moco/index.js';

/** The StepRng of batch `batch` of `epoch` in a run seeded with `seed`. */
export function stepRng(seed: number, epoch: number, batch: number): StepRng {
  return {
    permutation: (tag: string, n: number): Tensor =>
      tidy(() => tensor(new Rng(seed, tag, epoch, batch).permutation(n)).long()),
    integers: (tag: string, shape: number[], high: number): Tensor => {
      const r = new Rng(seed, tag, epoch, batch);
      const a = new Int32Array(shape.reduce((x, y) => x * y, 1));
      for (let i = 0; i < a.length; i++) a[i] = r.int(0, high - 1);
      return tidy(() => tensor(a, { shape }).long());
    },
  };
}
