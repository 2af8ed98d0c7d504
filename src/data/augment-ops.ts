// Batched image operations with per-sample parameters, on float N×3×H×W tensors in [0, 1] — torchvision's
// tensor definitions (transforms.functional), computed for a whole batch at once.
import { F, tensor, tidy, where, type Tensor } from '../torch/index.js';
import { callOp, op } from '../torch/tensor.js';
import type { Box } from './decode.js';

/** ITU-R 601-2 luma weights as torchvision's rgb_to_grayscale (tensor path). */
const LUMA = [0.2989, 0.587, 0.114] as const;

function perSample(values: ArrayLike<number>, device: string): Tensor {
  return tidy(() => {
    const t = tensor(Float32Array.from(values), { shape: [values.length, 1, 1, 1] });
    return device === 'cpu' ? t : t.to(device);
  });
}

/** Luma of each pixel, N×1×H×W (weighted channel sum: a 1×1 convolution is ~10× slower on CPU here). */
export function rgbToGray(x: Tensor): Tensor {
  return tidy(() =>
    x.select(1, 0).mul(LUMA[0]).add_(x.select(1, 1), LUMA[1]).add_(x.select(1, 2), LUMA[2]).unsqueeze(1),
  );
}

/** In place: x ← clamp(ratio·x + (1−ratio)·other, 0, 1) (torchvision's _blend). */
function blend_(x: Tensor, other: Tensor, ratio: Tensor): Tensor {
  tidy(() =>
    x
      .mul_(ratio)
      .add_(other.mul(ratio.neg().add(1)))
      .clamp_(0, 1),
  );
  return x;
}

/** In place: adjust_brightness with a factor per sample. */
export function brightness_(x: Tensor, factors: ArrayLike<number>): Tensor {
  tidy(() => x.mul_(perSample(factors, x.device)).clamp_(0, 1));
  return x;
}

/** In place: adjust_contrast, blending with the mean of the sample's grayscale. */
export function contrast_(x: Tensor, factors: ArrayLike<number>): Tensor {
  tidy(() => blend_(x, rgbToGray(x).mean({ dim: [1, 2, 3], keepdim: true }), perSample(factors, x.device)));
  return x;
}

/** In place: adjust_saturation, blending with the grayscale image. */
export function saturation_(x: Tensor, factors: ArrayLike<number>): Tensor {
  tidy(() => blend_(x, rgbToGray(x), perSample(factors, x.device)));
  return x;
}

/** adjust_brightness with a factor per sample (≥ 0); a new tensor. */
export function adjustBrightness(x: Tensor, factors: ArrayLike<number>): Tensor {
  return brightness_(x.clone(), factors);
}
/** adjust_contrast with a factor per sample; a new tensor. */
export function adjustContrast(x: Tensor, factors: ArrayLike<number>): Tensor {
  return contrast_(x.clone(), factors);
}
/** adjust_saturation with a factor per sample; a new tensor. */
export function adjustSaturation(x: Tensor, factors: ArrayLike<number>): Tensor {
  return saturation_(x.clone(), factors);
}

// Per output channel (R, G, B): the fraction of chroma above the min channel at hue h6 = 6h ∈ [0, 6) is
// clamp(sign·|h6 − centre| + offset, 0, 1) — the piecewise-linear HSV ramps.
const HUE_CENTRE = [3, 2, 4];
const HUE_SIGN = [1, -1, -1];
const HUE_OFFSET = [-1, 2, 2];

function channelConst(v: readonly number[], device: string): Tensor {
  const t = tensor(Float32Array.from(v), { shape: [1, 3, 1, 1] });
  return device === 'cpu' ? t : tidy(() => t.to(device));
}

/**
 * adjust_hue: rotate the hue in HSV by a per-sample factor in [−0.5, 0.5], as torchvision's _rgb2hsv/_hsv2rgb.
 * Value (max) and chroma (max − min) are invariant under a hue rotation, so only the hue is computed, and each
 * output channel is min + chroma·ramp(h) — the same values as torchvision's sector table with about half the
 * passes over the pixels and no int64 gathers.
 */
export function adjustHue(x: Tensor, factors: ArrayLike<number>): Tensor {
  return hue_(x.clone(), factors);
}

/** In place: {@link adjustHue} written back into x (its pixels are all read before the last pass writes). */
export function hue_(x: Tensor, factors: ArrayLike<number>): Tensor {
  tidy(() => {
    const r = x.select(1, 0),
      g = x.select(1, 1),
      b = x.select(1, 2);
    const maxc = op('aten::amax', '', [x, [1], true]);
    const minc = op('aten::amin', '', [x, [1], true]);
    const cr = maxc.sub(minc);
    const m = maxc.squeeze(1);
    const c2 = cr.squeeze(1);
    // torchvision: h = (g − b)/cr if max = r, else 2 + (b − r)/cr if max = g, else 4 + (r − g)/cr; (h/6 + 1) mod 1.
    // The nested where gives R priority over G as its masks do. Where max = min the numerator is 0: hue 0.
    const num = where(m.eq(r), g.sub(b), where(m.eq(g), b.sub(r).add_(c2, 2), r.sub(g).add_(c2, 4)));
    // h6 = 6·((h/6 + 1 + δ) mod 1), in one remainder: num/cr ∈ [−1, 5], + 6 + 6δ > 0.
    const shift = Float32Array.from(factors as ArrayLike<number>, (d) => 6 + 6 * d);
    let sh = tensor(shift, { shape: [shift.length, 1, 1] });
    if (x.device !== 'cpu') sh = sh.to(x.device);
    const h6 = num.div_(c2.clampMin(1e-30)).add_(sh).remainder(6).unsqueeze(1); // N×1×H×W
    const d = h6.sub(channelConst(HUE_CENTRE, x.device));
    op('aten::abs_', '', [d]);
    // offset + sign·|d|, clamped; then min + chroma·ramp — addcmul does each pair of passes in one.
    const ramp = op('aten::addcmul', '', [
      channelConst(HUE_OFFSET, x.device),
      d,
      channelConst(HUE_SIGN, x.device),
    ]).clamp_(0, 1);
    callOp('aten::addcmul', 'out', [minc, ramp, cr], { value: 1, out: x });
  });
  return x;
}

/** In place: every channel ← the luma (RandomGrayscale with 3 output channels). */
export function grayscale_(x: Tensor): Tensor {
  tidy(() => x.copy_(rgbToGray(x).expandAs(x)));
  return x;
}

/** Grayscale replicated to 3 channels; a new tensor. */
export function grayscale3(x: Tensor): Tensor {
  return tidy(() => rgbToGray(x).expandAs(x).contiguous());
}

/**
 * In place: PIL's ImageOps.solarize(img, threshold) where the pipeline's image would be 8-bit (torchvision's PIL
 * order: after jitter, grayscale and blur, before ToTensor): every value is quantised to v = round(255·x) (half
 * up, as PIL stores its ops' results), v ≥ threshold becomes 255 − v, and the result is v / 255. On an image
 * read from uint8 this is PIL's output exactly. `thresholds` per sample (0..255 units; PIL's default 128).
 */
export function solarize_(x: Tensor, thresholds: ArrayLike<number>): Tensor {
  tidy(() => {
    const v = x.clamp(0, 1).mul(255).add_(0.5).floor();
    const inv = v.neg().add_(255);
    x.copy_(where(v.ge(perSample(thresholds, x.device)), inv, v).div_(255));
  });
  return x;
}

/** {@link solarize_} on a copy. */
export function solarize(x: Tensor, thresholds: ArrayLike<number>): Tensor {
  return solarize_(x.clone(), thresholds);
}

/**
 * Gaussian kernel size for σ (pixels): 2·⌈3σ⌉+1, covering ±3σ, capped so that reflect padding fits the image
 * (≤ 2·min(H, W) − 1). torchvision takes the size as an argument; aug+ only fixes σ ∈ [0.1, 2].
 */
export function blurKernelSize(sigma: number, height = Infinity, width = Infinity): number {
  const k = 2 * Math.ceil(3 * sigma) + 1;
  const cap = 2 * Math.min(height, width) - 1;
  return Math.max(1, Math.min(k, cap % 2 === 1 ? cap : cap - 1));
}

/** torchvision's _get_gaussian_kernel1d. */
export function gaussianKernel1d(size: number, sigma: number): Float32Array {
  const half = (size - 1) * 0.5;
  const k = new Float32Array(size);
  let s = 0;
  for (let i = 0; i < size; i++) {
    const x = size === 1 ? 0 : -half + (2 * half * i) / (size - 1);
    k[i] = Math.exp(-0.5 * (x / sigma) ** 2);
    s += k[i]!;
  }
  for (let i = 0; i < size; i++) k[i]! /= s;
  return k;
}

/**
 * Separable Gaussian blur with σ per sample (pixels), reflect padding, kernel size {@link blurKernelSize} or
 * `kernelSizes` per sample (torchvision's gaussian_blur). Each sample is blurred with its own kernel as a sum
 * of shifted slices with scalar weights: measured 2–5× faster on CPU than one grouped depthwise convolution
 * with per-sample kernels (and its cost follows each sample's kernel size, not the batch's largest).
 */
export function gaussianBlur(x: Tensor, sigmas: ArrayLike<number>, kernelSizes?: ArrayLike<number>): Tensor {
  return tidy(() => {
    const [n, , h, w] = x.shape as [number, number, number, number];
    const out = x.clone();
    for (let i = 0; i < n; i++) {
      const K = kernelSizes ? kernelSizes[i]! : blurKernelSize(sigmas[i]!, h, w);
      if (K <= 1) continue;
      tidy(() => {
        const k = gaussianKernel1d(K, sigmas[i]!);
        const half = (K - 1) / 2;
        const p = F.pad(x.narrow(0, i, 1), [half, half, half, half], 'reflect'); // 1×C×(h+2half)×(w+2half)
        const horiz = p.narrow(3, 0, w).mul(k[0]!);
        for (let j = 1; j < K; j++) horiz.add_(p.narrow(3, j, w), k[j]!);
        const vert = out.narrow(0, i, 1);
        vert.copy_(horiz.narrow(2, 0, h)).mul_(k[0]!);
        for (let j = 1; j < K; j++) vert.add_(horiz.narrow(2, j, h), k[j]!);
      });
    }
    return out;
  });
}

/** In place: (x − mean) / std per channel. */
export function normalize_(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  tidy(() => {
    let m = tensor(Float32Array.from(mean), { shape: [1, 3, 1, 1] });
    let s = tensor(Float32Array.from(std), { shape: [1, 3, 1, 1] });
    if (x.device !== 'cpu') {
      m = m.to(x.device);
      s = s.to(x.device);
    }
    x.sub_(m).div_(s);
  });
  return x;
}

/** out ← (x − mean) / std per channel, in one pass written straight into `out` (e.g. a slice of a batch). */
export function normalizeInto(x: Tensor, mean: readonly number[], std: readonly number[], out: Tensor): Tensor {
  tidy(() => {
    let b = tensor(
      Float32Array.from(mean, (m, i) => -m / std[i]!),
      { shape: [1, 3, 1, 1] },
    );
    let s = tensor(
      Float32Array.from(std, (v) => 1 / v),
      { shape: [1, 3, 1, 1] },
    );
    if (x.device !== 'cpu') {
      b = b.to(x.device);
      s = s.to(x.device);
    }
    callOp('aten::addcmul', 'out', [b, x, s], { value: 1, out });
  });
  return out;
}

/** (x − mean) / std per channel; a new tensor. */
export function normalize(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  return normalize_(x.clone(), mean, std);
}

/**
 * Crops `boxes[i]` of `images[src[i]]` and resizes each to size×size with bilinear interpolation — torchvision's
 * resized_crop (crop, then interpolate with align_corners=False, no antialias) for the whole batch in one
 * grid_sample: sample coordinates are computed as interpolate does (half-pixel centres, clamped to the crop
 * box) and addressed with align_corners=True. `flips[i]` mirrors the output horizontally for free.
 * `images`: M×3×H×W (uint8 or float); returns float32 N×3×size×size in the input's range.
 */
export function resizedCrop(
  images: Tensor,
  src: ArrayLike<number>,
  boxes: readonly Box[],
  size: number | [number, number],
  flips?: ArrayLike<boolean>,
): Tensor {
  return tidy(() => {
    const [oh, ow] = typeof size === 'number' ? [size, size] : size;
    const [, , H, W] = images.shape as [number, number, number, number];
    const n = boxes.length;
    const gx = new Float32Array(n * ow);
    const gy = new Float32Array(n * oh);
    const coords = (
      out: Float32Array,
      off: number,
      start: number,
      len: number,
      outLen: number,
      full: number,
      flip: boolean,
    ): void => {
      const scale = len / outLen;
      for (let o = 0; o < outLen; o++) {
        let s = scale * (o + 0.5) - 0.5;
        s = s < 0 ? 0 : s > len - 1 ? len - 1 : s;
        const g = full > 1 ? (2 * (start + s)) / (full - 1) - 1 : 0;
        out[off + (flip ? outLen - 1 - o : o)] = g;
      }
    };
    for (let i = 0; i < n; i++) {
      const b = boxes[i]!;
      coords(gx, i * ow, b.left, b.width, ow, W, flips ? !!flips[i] : false);
      coords(gy, i * oh, b.top, b.height, oh, H, false);
    }
    let tx = tensor(gx, { shape: [n, 1, ow, 1] }).expand(n, oh, ow, 1);
    let ty = tensor(gy, { shape: [n, oh, 1, 1] }).expand(n, oh, ow, 1);
    if (images.device !== 'cpu') {
      tx = tx.to(images.device);
      ty = ty.to(images.device);
    }
    const grid = op('aten::cat', '', [[tx, ty], 3]);
    const idx = tensor(Int32Array.from(src), { dtype: 'int32' }).long();
    let inp = images.indexSelect(0, images.device === 'cpu' ? idx : idx.to(images.device));
    if (inp.dtype !== 'float32') inp = inp.float();
    return F.gridSample(inp, grid, { mode: 'bilinear', paddingMode: 'border', alignCorners: true });
  });
}
