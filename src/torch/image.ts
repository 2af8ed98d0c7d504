// Image kernels of the addon (native/image.cc): CPU only; callers keep an ATen composition for other devices.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** Opcodes of a {@link photometricInto} program. */
export const PhotometricOp = {
  none: 0,
  brightness: 1,
  contrast: 2,
  saturation: 3,
  hue: 4,
  grayscale: 5,
  blur: 6,
  solarize: 7,
} as const;

/**
 * Runs a per-sample list of photometric ops, then normalises, writing `out` (float32 N×3×H×W, contiguous CPU;
 * may be `input`). `input`: uint8 N×H×W×3 (channels last) or float32 N×3×H×W, contiguous, scaled by `scale`
 * into [0, 1]. `program` holds `steps` triples (opcode, a, b) per sample: brightness/contrast/saturation/hue
 * factor a (torchvision's adjust_* definitions), grayscale (ITU-R 601-2 luma to all channels), blur with
 * σ = a pixels and odd kernel size b < 2·min(H, W) (reflect padding), solarize with threshold a (PIL's
 * ImageOps.solarize on the image quantised to 8 bits: v = round(255·x), v ≥ a → 255 − v; then v / 255);
 * {@link PhotometricOp.none} pads.
 * Samples run in parallel on libtorch's intra-op threads.
 */
export function photometricInto(
  input: Tensor,
  scale: number,
  program: Float32Array,
  steps: number,
  mean: readonly number[],
  std: readonly number[],
  out: Tensor,
): Tensor {
  native.photometric(input.native, scale, program, steps, [...mean], [...std], out.native);
  return out;
}

/** A crop box in whole pixels. */
export interface PixelBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Crops `boxes` out of one RGB image (`src`: height × width × 3 bytes, rows top to bottom) and resizes each to
 * size × size exactly as PIL's `img.crop(box).resize((size, size), BILINEAR)` does (antialiased when shrinking,
 * 8-bit fixed point) — torchvision's RandomResizedCrop on PIL images — then mirrors it when `flips[i]`.
 * View i is written as size × size × 3 bytes at byte offset `offsets[i]` of `dst`. Runs in libuv's thread pool
 * (beside image decoding); `src` and `dst` must not change until it resolves. Bad arguments reject.
 */
export async function cropResizeInto(
  src: Uint8Array,
  width: number,
  height: number,
  boxes: readonly PixelBox[],
  flips: readonly boolean[],
  size: number,
  dst: Uint8Array,
  offsets: readonly number[],
): Promise<void> {
  const b = new Int32Array(boxes.length * 4);
  boxes.forEach((x, i) => b.set([x.left, x.top, x.width, x.height], i * 4));
  await native.cropResize(src, width, height, b, Uint8Array.from(flips, Number), size, dst, [...offsets]);
}
