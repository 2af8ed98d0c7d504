// The project's own demo data: procedurally drawn shapes over textured backgrounds, labelled by shape.
import { tensor } from '../../torch/index.js';
import { Rng } from '../rng.js';
import { MemoryDataset } from './dataset.js';

/** Shape classes, label = index. None is a mirror image of another, so flips keep the label. */
export const SYNTHETIC_CLASSES: readonly string[] = ['circle', 'ring', 'square', 'frame', 'triangle', 'cross', 'star', 'crescent', 'bar', 'dots'];

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

const TRI = [0, 1, 2].map((k) => [Math.cos(Math.PI / 2 + (2 * Math.PI * k) / 3), Math.sin(Math.PI / 2 + (2 * Math.PI * k) / 3)] as const);

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
    case 0: return r2 <= 0.8;
    case 1: return r2 <= 1 && r2 >= 0.36;
    case 2: return Math.abs(u) <= 0.72 && Math.abs(v) <= 0.72;
    case 3: { const m = Math.max(Math.abs(u), Math.abs(v)); return m <= 0.85 && m >= 0.55; }
    case 4: return inTriangle(u, v * 1.05 + 0.1);
    case 5: return (Math.abs(u) <= 0.28 && Math.abs(v) <= 1) || (Math.abs(v) <= 0.28 && Math.abs(u) <= 1);
    case 6: {
      const a = Math.atan2(v, u) + Math.PI / 2;
      const t = Math.abs((((a * 5) / (2 * Math.PI)) % 1 + 1) % 1 - 0.5) * 2; // 1 at a tip, 0 between tips
      const lim = 0.42 + 0.58 * t * t;
      return r2 <= lim * lim;
    }
    case 7: return r2 <= 1 && (u - 0.5) * (u - 0.5) + v * v >= 0.64;
    case 8: return Math.abs(u) <= 1 && Math.abs(v) <= 0.3;
    case 9: return (u - 0.55) * (u - 0.55) + v * v <= 0.16 || (u + 0.55) * (u + 0.55) + v * v <= 0.16;
    default: return false;
  }
}

/** Hues of the shared palette. */
const PALETTE = [0, 1 / 3, 2 / 3];

function hsv(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number): number => { const k = (n + h * 6) % 6; return v - v * s * Math.max(0, Math.min(k, 4 - k, 1)); };
  return [f(5), f(3), f(1)];
}

/** Draws image `i` into `out` (3×S×S planes) and returns its label. */
function draw(out: Uint8Array, off: number, size: number, classes: number, seed: number, i: number): number {
  const rng = new Rng(seed, 'synthetic', i);
  const label = i % classes;
  const S = size;
  // Colours come from a small palette shared by all classes and the background is flat: anything else that
  // tells images apart (a unique texture, a unique colour) is what instance discrimination would learn first,
  // instead of shape — measured: with textured backgrounds the kNN accuracy fell during training.
  const dark = rng.random() < 0.5;
  const bg = hsv(PALETTE[rng.int(0, PALETTE.length - 1)]!, 0.25, dark ? 0.2 : 0.8);
  const fg = hsv(PALETTE[rng.int(0, PALETTE.length - 1)]!, 0.7, dark ? 0.9 : 0.25);
  // Large and near the centre, so that most crops of RandomResizedCrop still show part of the shape.
  const cx = rng.uniform(0.4, 0.6) * S, cy = rng.uniform(0.4, 0.6) * S;
  const rad = rng.uniform(0.3, 0.45) * S;
  // Upright give or take 20°: a rotation is a nuisance no augmentation removes, so it stays modest.
  const th = rng.uniform(-0.35, 0.35);
  const ct = Math.cos(th) / rad, st = Math.sin(th) / rad;
  const plane = S * S;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      // 2×2 supersampling for anti-aliased edges.
      let cov = 0;
      for (let sy = 0; sy < 2; sy++) {
        for (let sx = 0; sx < 2; sx++) {
          const dx = x + 0.25 + 0.5 * sx - cx, dy = y + 0.25 + 0.5 * sy - cy;
          if (inside(label, dx * ct + dy * st, -dx * st + dy * ct)) cov++;
        }
      }
      const a = cov / 4;
      const noise = (rng.random() - 0.5) * 0.06;
      for (let ch = 0; ch < 3; ch++) {
        const val = bg[ch]! * (1 - a) + fg[ch]! * a + noise;
        out[off + ch * plane + y * S + x] = Math.max(0, Math.min(255, Math.round(val * 255)));
      }
    }
  }
  return label;
}

/**
 * Procedural labelled images generated in memory (~0.1 ms an image at 32×32): one of {@link SYNTHETIC_CLASSES}
 * at random position, scale and slight rotation, in a palette colour over a flat background of another.
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
    if (!Number.isInteger(classes) || classes < 2 || classes > SYNTHETIC_CLASSES.length) throw new RangeError(`Synthetic: classes must be 2..${SYNTHETIC_CLASSES.length}, got ${classes}`);
    if (!Number.isInteger(size) || size < 8) throw new RangeError(`Synthetic: size must be an integer ≥ 8, got ${size}`);
    const per = 3 * size * size;
    const pix = new Uint8Array(n * per);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) labels[i] = draw(pix, i * per, size, classes, seed, i);
    super(tensor(pix, { shape: [n, 3, size, size], dtype: 'uint8' }), labels, SYNTHETIC_CLASSES.slice(0, classes), `Synthetic(seed ${seed})`);
  }
}
