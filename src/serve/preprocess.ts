// Request images → model input: the header is read first (a decompression bomb is refused before any pixel is
// decoded), then sharp crops and resizes as the model's recorded evaluation preprocessing says and the pixels
// are normalised into CHW float32.
import sharp from 'sharp';
import { centerCropBox } from '../data/augment-params.js';
import { HttpError } from './errors.js';

/**
 * The deterministic preprocessing a model was trained/evaluated with, as `/v1/info` reports it and the browser
 * page repeats it on a canvas.
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

/** The source rectangle an image of width×height is cut from. */
export function sourceBox(width: number, height: number, p: Preprocessing): { left: number; top: number; width: number; height: number } {
  if (p.resize === null) return { left: 0, top: 0, width, height };
  const b = centerCropBox(width, height, p.resize, p.size);
  const left = Math.round(b.left), top = Math.round(b.top);
  return { left, top, width: Math.min(width - left, Math.max(1, Math.round(b.width))), height: Math.min(height - top, Math.max(1, Math.round(b.height))) };
}

/**
 * Decodes one image (any format sharp reads) into `out` at `at` as 3×size×size normalised float32.
 * Throws HttpError 413 for too many pixels and 422 for bytes that are not a decodable image.
 */
export async function preprocessImage(bytes: Uint8Array, p: Preprocessing, out: Float32Array, at: number, limits: DecodeLimits = {}): Promise<void> {
  const maxPixels = limits.maxPixels ?? 50e6;
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata(); // the header only; the limit is ours below
  } catch (e) {
    throw new HttpError(422, 'undecodable', `not a readable image: ${(e as Error).message.split('\n')[0]}`);
  }
  const w = meta.autoOrient?.width ?? meta.width ?? 0;
  const h = meta.autoOrient?.height ?? meta.height ?? 0;
  if (!w || !h) throw new HttpError(422, 'undecodable', 'image has no size');
  if (w * h > maxPixels) throw new HttpError(413, 'too_many_pixels', `image is ${w}×${h} = ${w * h} pixels; the limit is ${maxPixels} (--max-pixels)`);
  let data: Buffer;
  try {
    const b = sourceBox(w, h, p);
    // limitInputPixels again: the header could lie about the size of what follows.
    data = await sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels }).autoOrient().extract(b)
      .resize(p.size, p.size, { fit: 'fill', kernel: 'linear' }).removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer();
  } catch (e) {
    const m = (e as Error).message.split('\n')[0]!;
    if (/pixel limit/i.test(m)) throw new HttpError(413, 'too_many_pixels', `${m} (limit ${maxPixels} pixels, --max-pixels)`);
    throw new HttpError(422, 'undecodable', `image could not be decoded: ${m}`);
  }
  const plane = p.size * p.size;
  if (data.length !== plane * 3) throw new HttpError(422, 'undecodable', `image decoded to ${data.length} bytes, ${plane * 3} (RGB ${p.size}×${p.size}) expected`);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[at + c * plane + i] = (data[i * 3 + c]! / 255 - p.mean[c]!) / p.std[c]!;
  }
}
