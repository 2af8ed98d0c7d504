// Fixtures for the serve tests: a tiny ResNet-18 checkpoint (width 8, made here with a fixed seed), generated
// images in labelled folders, and an exact index of them written by the library's own embed path.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { createModel } from '../../src/models/index.js';
import { manualSeed } from '../../src/torch/index.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { embedImages } from '../../src/eval/embed.js';
import { EmbeddingWriter } from '../../src/eval/embedding-file.js';
import { loadEncoder } from '../../src/eval/encoder.js';

/** A random-init ResNet-18 of width 8 (CIFAR stem: 32-px input; else ImageNet stem) as a safetensors state dict. */
export function tinyCheckpoint(dir: string, o: { cifar?: boolean; seed?: number; width?: number } = {}): string {
  manualSeed(o.seed ?? 7);
  const width = o.width ?? 8;
  const m = createModel('resnet18', { cifarStem: o.cifar ?? true, width });
  const file = join(dir, `tiny-${(o.cifar ?? true) ? 'cifar' : 'imagenet'}-w${width}-s${o.seed ?? 7}.safetensors`);
  saveSafetensors(file, m.stateDict());
  m.dispose();
  return file;
}

/** An RGB image whose colours and pattern depend on (seed, kind), as PNG or JPEG bytes. */
export async function patternImage(
  seed: number,
  o: { width?: number; height?: number; kind?: number; format?: 'png' | 'jpeg' } = {},
): Promise<Buffer> {
  const w = o.width ?? 32,
    h = o.height ?? 32,
    k = o.kind ?? 0;
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const stripe = ((k % 2 ? x : y) >> (1 + (k % 3))) & 1;
      px[i] = (stripe ? 200 : 40) + ((seed * 37) % 50);
      px[i + 1] = (x * (3 + k) + y * 5 + seed * 11) % 256;
      px[i + 2] = (k * 60 + seed * 13 + x) % 256;
    }
  }
  const s = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  return o.format === 'jpeg' ? s.jpeg({ quality: 95 }).toBuffer() : s.png().toBuffer();
}

/** `perClass` PNG images in each of the class folders under `dir/images`; returns their paths. */
export async function labelledImages(dir: string, classes: string[], perClass: number, size = 32): Promise<string[]> {
  const out: string[] = [];
  for (const [k, c] of classes.entries()) {
    mkdirSync(join(dir, 'images', c), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const f = join(dir, 'images', c, `${i}.png`);
      await sharp(await patternImage(i, { kind: k, width: size, height: size })).toFile(f);
      out.push(f);
    }
  }
  return out;
}

/** An exact index (.npy + sidecars) of `files`, embedded by the library (the code path of `moco embed`). */
export async function buildIndex(ckpt: string, files: string[], out: string): Promise<string> {
  const enc = loadEncoder(ckpt);
  try {
    const writer = new EmbeddingWriter(out, { pretrained: ckpt, feature: 'backbone', normalized: true });
    await embedImages(enc, files, { writer });
    writer.finish();
    return out;
  } finally {
    enc.dispose();
  }
}

/** A LanceDB collection (`moco index`'s code path) of `files` at `db`. */
export async function buildCollection(ckpt: string, files: string[], db: string): Promise<string> {
  const { Collection, indexImages } = await import('../../src/collections/index.js');
  const enc = loadEncoder(ckpt);
  try {
    const coll = await Collection.open(db, { dim: enc.dim('backbone'), pretrained: ckpt, feature: 'backbone' });
    try {
      await indexImages(enc, files, coll);
    } finally {
      coll.close();
    }
    return db;
  } finally {
    enc.dispose();
  }
}
