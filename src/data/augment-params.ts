// Random augmentation parameters, drawn per sample from the run's seeded Rng with torchvision's sampling rules.
import type { Box } from './decode.js';
import type { Rng } from './rng.js';

/** Python's round(): half to even (torchvision's crop sizes use it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * RandomResizedCrop.get_params: up to 10 tries of area ∈ scale·W·H and log-uniform aspect ratio ∈ ratio,
 * accepted when the box fits; else the center crop clamped to the ratio range. Sizes in pixels.
 */
export function sampleCropBox(
  rng: Rng,
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
): Box {
  const area = width * height;
  const lr0 = Math.log(ratio[0]),
    lr1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(lr0, lr1));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h);
      const left = rng.int(0, width - w);
      return { left, top, width: w, height: h };
    }
  }
  return centerFallback(width, height, ratio);
}

function centerFallback(width: number, height: number, ratio: readonly [number, number]): Box {
  const inRatio = width / height;
  let w: number, h: number;
  if (inRatio < Math.min(...ratio)) {
    w = width;
    h = roundHalfEven(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    h = height;
    w = roundHalfEven(h * Math.max(...ratio));
  } else {
    w = width;
    h = height;
  }
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}

/**
 * Resize(shorter side → `resize`) then CenterCrop(`size`), expressed as the source box it reads (pixels):
 * one resample instead of two.
 */
export function centerCropBox(width: number, height: number, resize: number, size: number): Box {
  const s = resize / Math.min(width, height);
  const cw = Math.min(width, size / s),
    ch = Math.min(height, size / s);
  return { left: (width - cw) / 2, top: (height - ch) / 2, width: cw, height: ch };
}

/** ColorJitter ranges (torchvision's: factors in [max(0, 1−x), 1+x], hue in [−h, h]) and probability. */
export interface JitterSpec {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  /** Probability of applying the jitter (RandomApply). Default 1. */
  p?: number;
}

/** One sample's jitter: the order of ops (0 brightness, 1 contrast, 2 saturation, 3 hue) and factors. */
export interface JitterParams {
  order: [number, number, number, number];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** ColorJitter.get_params: a random permutation of the four, then each factor (1 / 0 when its range is 0). */
export function sampleJitter(rng: Rng, j: JitterSpec): JitterParams {
  const order = rng.permutation(4);
  const f = (x: number): number => (x > 0 ? rng.uniform(Math.max(0, 1 - x), 1 + x) : 1);
  const brightness = f(j.brightness);
  const contrast = f(j.contrast);
  const saturation = f(j.saturation);
  const hue = j.hue > 0 ? rng.uniform(-j.hue, j.hue) : 0;
  return { order: [order[0]!, order[1]!, order[2]!, order[3]!], brightness, contrast, saturation, hue };
}
