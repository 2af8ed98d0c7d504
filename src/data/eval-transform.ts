// The model's evaluation transform, one definition for everything that feeds images to an exported model:
// `moco embed MODEL.onnx`, `moco serve`, `moco export --web` and (repeated on a canvas, same rounding) the
// browser page. The header is read first (a decompression bomb is refused before any pixel is decoded), then
// sharp crops and resizes as the model's recorded preprocessing says and the pixels are normalised into CHW
// float32. No libtorch here.
import sharp from 'sharp';
import { centerCropBox } from './augment-params.js';

/**
 * The deterministic preprocessing a model was trained/evaluated with, as an exported model records it
 * (ONNX metadata `preprocess`), `/v1/info` reports it and the browser page repeats it.
 */
export interface Preprocessing {
  /** Square side fed to the model, pixels. */
  size: number;
  /**
   * Shorter side before the center crop of `size` (torchvision Resize + CenterCrop), pixels; null: the whole
   * image is stretched to size×size (the CIFAR evaluation transform of 32-px images).
   */
  resize: number | null;
  /** Per-channel mean and std of the [0, 1] RGB input. */
  mean: [number, number, number];
  std: [number, number, number];
  /** Name of the preset it came from ('eval', 'cifar-eval'). */
  preset: string;
}

export interface DecodeLimits {
  /** Most pixels (width × height) an input may have; default 50 M. */
  maxPixels?: number;
}

/** Why an image could not become model input: too many pixels, or not a decodable image. */
export class ImageInputError extends Error {
  constructor(
    readonly code: 'too_many_pixels' | 'undecodable',
    message: string,
  ) {
    super(message);
  }
}

const IMAGENET = {
  mean: [0.485, 0.456, 0.406] as [number, number, number],
  std: [0.229, 0.224, 0.225] as [number, number, number],
};
const CIFAR = {
  mean: [0.4914, 0.4822, 0.4465] as [number, number, number],
  std: [0.2023, 0.1994, 0.201] as [number, number, number],
};

/** The evaluation preprocessing of a CIFAR-stem (32-px, stretched) or ImageNet-stem (Resize+CenterCrop) model. */
export function stemPreprocessing(cifar: boolean, size?: number): Preprocessing {
  if (cifar) return { size: size ?? 32, resize: null, ...CIFAR, preset: 'cifar-eval' };
  const s = size ?? 224;
  return { size: s, resize: Math.round((s * 256) / 224), ...IMAGENET, preset: 'eval' };
}

/**
 * The preprocessing an exported model records in its metadata (`preprocess`, written by `moco export`), or for
 * a model without it, the one its `stem` entry names (ImageNet's 224-px transform when it names none).
 */
export function recordedPreprocessing(meta: ReadonlyMap<string, string>): Preprocessing {
  const rec = meta.get('preprocess');
  if (rec === undefined) return stemPreprocessing(meta.get('stem') === 'cifar');
  const p = JSON.parse(rec) as Preprocessing;
  const ok =
    Number.isInteger(p.size) &&
    p.size > 0 &&
    (p.resize === null || (Number.isInteger(p.resize) && p.resize >= p.size)) &&
    [p.mean, p.std].every((v) => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number')) &&
    p.std.every((x) => x > 0);
  if (!ok) throw new Error(`the model's recorded preprocessing is not valid: ${rec}`);
  return p;
}

/** The source rectangle an image of width×height is cut from. */
export function sourceBox(
  width: number,
  height: number,
  p: Preprocessing,
): { left: number; top: number; width: number; height: number } {
  if (p.resize === null) return { left: 0, top: 0, width, height };
  const b = centerCropBox(width, height, p.resize, p.size);
  const left = Math.round(b.left),
    top = Math.round(b.top);
  return {
    left,
    top,
    width: Math.min(width - left, Math.max(1, Math.round(b.width))),
    height: Math.min(height - top, Math.max(1, Math.round(b.height))),
  };
}

/**
 * Decodes one image (encoded bytes or a file path; any format sharp reads) into `out` at `at` as 3×size×size
 * normalised float32. Throws {@link ImageInputError} for too many pixels or an undecodable input.
 */
export async function preprocessImage(
  input: Uint8Array | string,
  p: Preprocessing,
  out: Float32Array,
  at: number,
  limits: DecodeLimits = {},
): Promise<void> {
  const maxPixels = limits.maxPixels ?? 50e6;
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata(); // the header only; the limit is ours below
  } catch (e) {
    throw new ImageInputError('undecodable', `not a readable image: ${(e as Error).message.split('\n')[0]}`);
  }
  const w = meta.autoOrient?.width ?? meta.width ?? 0;
  const h = meta.autoOrient?.height ?? meta.height ?? 0;
  if (!w || !h) throw new ImageInputError('undecodable', 'image has no size');
  if (w * h > maxPixels)
    throw new ImageInputError(
      'too_many_pixels',
      `image is ${w}×${h} = ${w * h} pixels; the limit is ${maxPixels} (--max-pixels)`,
    );
  let data: Buffer;
  try {
    const b = sourceBox(w, h, p);
    // limitInputPixels again: the header could lie about the size of what follows.
    data = await sharp(input, { failOn: 'error', limitInputPixels: maxPixels })
      .autoOrient()
      .extract(b)
      .resize(p.size, p.size, { fit: 'fill', kernel: 'linear' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer();
  } catch (e) {
    const m = (e as Error).message.split('\n')[0]!;
    if (/pixel limit/i.test(m))
      throw new ImageInputError('too_many_pixels', `${m} (limit ${maxPixels} pixels, --max-pixels)`);
    throw new ImageInputError('undecodable', `image could not be decoded: ${m}`);
  }
  const plane = p.size * p.size;
  if (data.length !== plane * 3)
    throw new ImageInputError(
      'undecodable',
      `image decoded to ${data.length} bytes, ${plane * 3} (RGB ${p.size}×${p.size}) expected`,
    );
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[at + c * plane + i] = (data[i * 3 + c]! / 255 - p.mean[c]!) / p.std[c]!;
  }
}
