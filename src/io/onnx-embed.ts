// Embeddings through onnxruntime from an exported model, with sharp for decoding: no libtorch at run time
// (this file and what it imports never load the native addon), for Node services.
import sharp from 'sharp';
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { centerCropBox } from '../data/augment-params.js';
import { OnnxRunner } from './onnx-runtime.js';
import { npyHeader } from '../eval/embedding-file.js';

export interface OnnxEmbedOptions {
  /** Square crop fed to the model, pixels; default 224. */
  size?: number;
  /** Shorter side before the center crop, pixels; default round(size·256/224) (torchvision's eval). */
  resize?: number;
  /** Per-channel mean and std of the [0, 1] input; default ImageNet's. */
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  /** Images per onnxruntime call; default 32. */
  batchSize?: number;
  /** Run onnxruntime in a child process; default false. */
  isolate?: boolean;
  /** onnxruntime intra-op threads; default onnxruntime's. */
  threads?: number;
}

export interface Embeddings {
  /** Row-major [count, dim]. */
  data: Float32Array;
  count: number;
  dim: number;
}

const IMAGE_EXT = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.bmp']);

/** Image files under the given files/directories (recursive, sorted). */
export function listImages(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else if (IMAGE_EXT.has(extname(p).toLowerCase())) out.push(p);
  };
  for (const p of paths) walk(p);
  return out;
}

/** Decodes, resizes and center-crops one image into CHW float32, normalised. */
async function preprocess(file: string, size: number, resize: number, mean: readonly number[], std: readonly number[], out: Float32Array, at: number): Promise<void> {
  const img = sharp(file, { failOn: 'error' }).autoOrient();
  const m = await img.metadata();
  const w = m.autoOrient?.width ?? m.width ?? 0;
  const h = m.autoOrient?.height ?? m.height ?? 0;
  if (!w || !h) throw new Error(`${file}: image has no size`);
  const b = centerCropBox(w, h, resize, size);
  const left = Math.round(b.left), top = Math.round(b.top);
  const crop = { left, top, width: Math.min(w - left, Math.max(1, Math.round(b.width))), height: Math.min(h - top, Math.max(1, Math.round(b.height))) };
  const { data } = await img.extract(crop).resize(size, size, { fit: 'fill', kernel: 'linear' }).removeAlpha().toColourspace('srgb')
    .raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[at + c * plane + i] = (data[i * 3 + c]! / 255 - mean[c]!) / std[c]!;
  }
}

/** Embeds image files with an ONNX model exported by `moco export --format onnx`. */
export async function embedFilesOnnx(model: string, files: string[], o: OnnxEmbedOptions = {}): Promise<Embeddings> {
  const size = o.size ?? 224;
  const resize = o.resize ?? Math.round((size * 256) / 224);
  const mean = o.mean ?? [0.485, 0.456, 0.406];
  const std = o.std ?? [0.229, 0.224, 0.225];
  const bs = o.batchSize ?? 32;
  const runner = await OnnxRunner.open(model, { isolate: o.isolate, threads: o.threads });
  try {
    const parts: Float32Array[] = [];
    let dim = 0;
    for (let i = 0; i < files.length; i += bs) {
      const chunk = files.slice(i, i + bs);
      const x = new Float32Array(chunk.length * 3 * size * size);
      await Promise.all(chunk.map((f, j) => preprocess(f, size, resize, mean, std, x, j * 3 * size * size)));
      const out = Object.values(await runner.run(x, [chunk.length, 3, size, size]))[0]!;
      dim = out.dims[1]!;
      parts.push(out.data);
    }
    const data = new Float32Array(files.length * dim);
    let off = 0;
    for (const p of parts) { data.set(p, off); off += p.length; }
    return { data, count: files.length, dim };
  } finally {
    await runner.close();
  }
}

/** A NumPy .npy file (format 1.0, little-endian float32) of shape [count, dim]. */
export function toNpy(e: Embeddings): Buffer {
  return Buffer.concat([npyHeader(e.count, e.dim), Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength)]);
}
