// torchvision's RandomCrop(size, padding=4) on a normalised batch, for training the linear classifier on
// 32-px images (the CIFAR counterpart of RandomResizedCrop): zero-pad each image (zero *pixels*, i.e. −mean/std
// after normalisation) and take a random size×size window per sample.
import { F, cat, tensor, tidy, type Tensor } from '../torch/index.js';
import type { Rng } from '../data/rng.js';

/**
 * Pads x (N×3×H×W, normalised with `mean`/`std`) by `pad` pixels of black and crops a random H×W window per
 * sample (offsets uniform in [0, 2·pad], drawn from `rng` in sample order). Returns a new tensor.
 */
export function randomPadCrop(x: Tensor, rng: Rng, mean: readonly number[], std: readonly number[], pad = 4): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (!n) return x.clone();
  return tidy(() => {
    // Black in normalised units per channel: pad (x − b) with zeros, then add b back.
    const black = tensor(
      Float32Array.from(mean, (m, i) => -m / std[i]!),
      { shape: [1, c, 1, 1] },
    );
    const padded = F.pad(x.sub(black), [pad, pad, pad, pad]).add(black);
    const out: Tensor[] = [];
    for (let i = 0; i < n; i++) {
      const dy = rng.int(0, 2 * pad);
      const dx = rng.int(0, 2 * pad);
      out.push(padded.narrow(0, i, 1).narrow(2, dy, h).narrow(3, dx, w));
    }
    return cat(out, 0);
  });
}
