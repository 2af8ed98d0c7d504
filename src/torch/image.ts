// Image kernels of the addon (native/image.cc): CPU only; callers keep an ATen composition for other devices.
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** Opcodes of a {@link photometricInto} program. */
export const PhotometricOp = { none: 0, brightness: 1, contrast: 2, saturation: 3, hue: 4, grayscale: 5, blur: 6 } as const;

/**
 * Runs a per-sample list of photometric ops, then normalises, writing `out` (float32 N×3×H×W, contiguous CPU;
 * may be `input`). `input`: uint8 N×H×W×3 (channels last) or float32 N×3×H×W, contiguous, scaled by `scale`
 * into [0, 1]. `program` holds `steps` triples (opcode, a, b) per sample: brightness/contrast/saturation/hue
 * factor a (torchvision's adjust_* definitions), grayscale (ITU-R 601-2 luma to all channels), blur with
 * σ = a pixels and odd kernel size b < 2·min(H, W) (reflect padding); {@link PhotometricOp.none} pads.
 * Samples run in parallel on libtorch's intra-op threads.
 */
export function photometricInto(input: Tensor, scale: number, program: Float32Array, steps: number,
  mean: readonly number[], std: readonly number[], out: Tensor): Tensor {
  native.photometric(input.native, scale, program, steps, [...mean], [...std], out.native);
  return out;
}
