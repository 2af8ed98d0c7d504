// The project's own demo data: procedurally drawn shapes over textured backgrounds, labelled by shape.
import { tensor } from '../../torch/index.js';
import { Rng } from '../rng.js';
import { MemoryDataset } from './dataset.js';

/** Shape classes, label = index. None is a mirror image of another, so flips keep the label. */
export const SYNTHETIC_CLASSES: readonly string[] = [
  'circle',
  'ring',
  'square',
  'frame',
  'triangle',
  'cross',
  'star',
  'crescent',
  'bar',
  'dots',
];

export interface SyntheticOpts {
  /** Number of images. Default 10,000. */
  n?: number;
  /** Number of classes, 2..10. Default 10. */
  classes?: number;
  /** Side in pixels. Default 32. */
  size?: number;
  /** Generator seed; image i depends only on (seed, i). Default 0. */
  seed?: number;
}

const TRI = [0, 1, 2].map(
  (k) => [Math.cos(Math.PI / 2 + (2 * Math.PI * k) / 3), Math.sin(Math.PI / 2 + (2 * Math.PI * k) / 3)] as const,
);

function inTriangle(u: number, v: number): boolean {
  for (let k = 0; k < 3; k++) {
    const [ax, ay] = TRI[k]!;
    const [bx, by] = TRI[(k + 1) % 3]!;
    if ((bx - ax) * (v - ay) - (by - ay) * (u - ax) < 0) return false;
  }
  return true;
}

/** Inside test of class `c` in shape coordinates (unit radius). */
function inside(c: number, u: number, v: number): boolean {
  const r2 = u * u + v * v;
  switch (c) {
    case 0:
      return r2 <= 0.8;
    case 1:
      return r2 <= 1 && r2 >= 0.36;
    case 2:
      return Math.abs(u) <= 0.72 && Math.abs(v) <= 0.72;
    case 3: {
      const m = Math.max(Math.abs(u), Math.abs(v));
      return m <= 0.85 && m >= 0.55;
    }
    case 4:
      return inTriangle(u, v * 1.05 + 0.1);
    case 5:
      return (Math.abs(u) <= 0.28 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.28 && Math.abs(u) <= 1);
    case 6: {
      const a = Math.atan2(v, u) + Math.PI / 2;
      const t = Math.abs((((((a * 5) / (2 * Math.PI)) % 1) + 1) % 1) - 0.5) * 2; // 1 at a tip, 0 between tips
      const lim = 0.42 + 0.58 * t * t;
      return r2 <= lim * lim;
    }
    case 7:
      return r2 <= 1 && (u - 0.5) * (u - 0.5) + v * v >= 0.64;
    case 8:
      return Math.abs(u) <= 1 && Math.abs(v) <= 0.3;
    case 9:
      return (u - 0.55) * (u - 0.55) + v * v <= 0.16 || (u + 0.55) * (u + 0.55) + v * v <= 0.16;
    default:
      return false;
  }
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number): number => {
    const k = (n + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [f(5), f(3), f(1)];
}

/** Draws image `i` into `out` (3×S×S planes) and returns its label. */
function draw(out: Uint8Array, off: number, size: number, classes: number, seed: number, i: number): number {
  const rng = new Rng(seed, 'synthetic', i);
  const label = i % classes;
  const S = size;
  // One shape over a faintly textured background. Its colours vary from image to image only about as much as
  // ColorJitter varies them (hue ±0.1, value ×0.6–1.4), and its size (×3) and place about as much as
  // RandomResizedCrop changes them: after augmentation, two images of one class look nearly as alike as two
  // views of one image, so instance discrimination has little to go on but the shape. (Measured: with colours
  // from distinct palettes, or coloured backgrounds, MoCo told images apart by colour, and kNN accuracy by
  // shape fell during training; with this design it rises well above the random encoder's.)
  const bg = hsv((0.6 + rng.uniform(-0.1, 0.1) + 1) % 1, rng.uniform(0.2, 0.4), rng.uniform(0.25, 0.45));
  const fg = hsv((0.1 + rng.uniform(-0.1, 0.1) + 1) % 1, rng.uniform(0.6, 0.9), rng.uniform(0.65, 1));
  // A faint plaid texture at a random phase: content in every crop, identical in none.
  const tph = rng.uniform(0, 2 * Math.PI);
  const rad = S * 0.45 * Math.exp(rng.uniform(Math.log(1 / 3), 0));
  const cx = rng.uniform(rad, S - rad),
    cy = rng.uniform(rad, S - rad);
  // Upright give or take 20°: a rotation is a nuisance no augmentation removes, so it stays modest.
  const th = rng.uniform(-0.35, 0.35);
  const ct = Math.cos(th) / rad,
    st = Math.sin(th) / rad;
  const plane = S * S;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      // 2×2 supersampling for anti-aliased edges.
      let cov = 0;
      for (let sy = 0; sy < 2; sy++) {
        for (let sx = 0; sx < 2; sx++) {
          const dx = x + 0.25 + 0.5 * sx - cx,
            dy = y + 0.25 + 0.5 * sy - cy;
          if (inside(label, dx * ct + dy * st, -dx * st + dy * ct)) cov++;
        }
      }
      const a = cov / 4;
      const tex = 0.03 * (Math.sin(1.1 * x + tph) + Math.sin(1.43 * y - tph));
      for (let ch = 0; ch < 3; ch++) {
        const val = (bg[ch]! + tex) * (1 - a) + fg[ch]! * a;
        out[off + ch * plane + y * S + x] = Math.max(0, Math.min(255, Math.round(val * 255)));
      }
    }
  }
  return label;
}

/**
 * Procedural labelled images generated in memory (~0.1 ms an image at 32×32): one of {@link SYNTHETIC_CLASSES}
 * at a random position, scale, slight rotation and colour over a textured background.
 * The label is the shape only, so a model must learn shape, not colour — what MoCo's augmentations teach.
 * Deterministic: image i depends only on (seed, i). Balanced: label = i mod classes.
 */
export class Synthetic extends MemoryDataset {
  constructor(o: SyntheticOpts = {}) {
    const n = o.n ?? 10000;
    const classes = o.classes ?? 10;
    const size = o.size ?? 32;
    const seed = o.seed ?? 0;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Synthetic: n must be a positive integer, got ${n}`);
    if (!Number.isInteger(classes) || classes < 2 || classes > SYNTHETIC_CLASSES.length)
      throw new RangeError(`Synthetic: classes must be 2..${SYNTHETIC_CLASSES.length}, got ${classes}`);
    if (!Number.isInteger(size) || size < 8)
      throw new RangeError(`Synthetic: size must be an integer ≥ 8, got ${size}`);
    const per = 3 * size * size;
    const pix = new Uint8Array(n * per);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) labels[i] = draw(pix, i * per, size, classes, seed, i);
    super(
      tensor(pix, { shape: [n, 3, size, size], dtype: 'uint8' }),
      labels,
      SYNTHETIC_CLASSES.slice(0, classes),
      `Synthetic(seed ${seed})`,
    );
  }
}
