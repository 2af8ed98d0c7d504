// Embeddings of image files with a loaded encoder: decoded and preprocessed in batches (sharp, the encoder's
// evaluation transform), L2-normalised backbone or head features; files that cannot be decoded are listed and
// left out rather than failing the run.
import { F, noGrad, tidy, type Tensor } from '../torch/index.js';
import { Augmentation, Rng, SkipLog, imageSize, listImages, type Skipped } from '../data/index.js';
import { statSync } from 'node:fs';
import type { Encoder, FeatureKind } from './encoder.js';
import type { RegionOpts } from './regions.js';
import type { EmbeddingWriter } from './embedding-file.js';

export interface EmbedOpts {
  /** Backbone (default), head or region features. */
  feature?: FeatureKind;
  /** Options of the `regions` feature (see regions.ts); default its defaults. */
  regions?: RegionOpts;
  /**
   * Average each image's features with those of its horizontal mirror (before normalising), so that a flipped
   * copy gets the same vector; default false. Costs a second forward.
   */
  flip?: boolean;
  /**
   * Also average in the features of crops of the image, each keeping `crops.scale` (default 0.9) of its width
   * and height and resized back (bilinear): 'center' one centred crop, 'five' the centre and the four corners;
   * default none. A cropped copy of an image then shares more of its vector. Costs one forward per crop (twice
   * with `flip`).
   */
  crops?: { kind: 'center' | 'five'; scale?: number };
  /** L2-normalise each vector; default true. */
  normalize?: boolean;
  /** Images per forward; default 64. */
  batchSize?: number;
  /** Called after each batch with (files done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Receives each batch's rows as they are computed (streaming to a file); without it rows are collected. */
  writer?: EmbeddingWriter;
  /** Called once per file that could not be used. */
  onSkip?: (s: Skipped) => void;
}

export interface Embedded {
  /** Paths of the embedded images, in row order. */
  paths: string[];
  /** Row-major count × dim (empty when streamed to `writer`). */
  vectors: Float32Array;
  dim: number;
  /** Files that could not be decoded, with the reason. */
  skipped: Skipped[];
}

/** Image files under the given files or folders (recursive, sorted; a file named directly is taken as is). */
export function collectImages(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    if (statSync(p).isDirectory()) out.push(...listImages(p));
    else out.push(p);
  }
  return out;
}

/**
 * Embeds image files with `encoder` in its evaluation preprocessing (CIFAR-stem encoders: the image resized to
 * 32×32; others: Resize(256)+CenterCrop(224)). Returns the vectors in file order, minus unreadable files.
 */
export async function embedImages(encoder: Encoder, files: readonly string[], o: EmbedOpts = {}): Promise<Embedded> {
  const feature = o.feature ?? 'backbone';
  const dim = encoder.dim(feature, o.regions);
  const bs = o.batchSize ?? 64;
  const pre = encoder.preprocess();
  const aug = new Augmentation(pre.augment, pre.augmentOpts);
  const log = new SkipLog(() => undefined);
  const skipped: Skipped[] = [];
  const skip = (path: string, reason: string): void => {
    const s = { path, reason };
    skipped.push(s);
    o.onSkip?.(s);
  };
  const paths: string[] = [];
  const parts: Float32Array[] = [];
  for (let start = 0; start < files.length; start += bs) {
    const chunk = files.slice(start, start + bs);
    // Headers first: a file sharp cannot even open is left out before any pixel work.
    const ok: string[] = [];
    await Promise.all(chunk.map(async (p, i) => {
      try { await imageSize(p); ok[i] = p; } catch (e) { skip(p, (e as Error).message.split('\n')[0]!); }
    }));
    const good = ok.filter((p): p is string => p !== undefined);
    if (good.length) {
      const { views } = await aug.fromFiles((i) => good[i]!, Int32Array.from(good.keys()), new Rng(0), 1, { log });
      // Pixels that failed after a good header (truncated files) come back gray and are in the log: drop them.
      const keepRows = good.flatMap((p, i) => (log.has(p) ? [] : [i]));
      for (const p of good) if (log.has(p)) skip(p, log.list.find((s) => s.path === p)?.reason ?? 'undecodable');
      const rows = tidy(() => {
        const inputs = [views[0]!, ...cropViews(views[0]!, o.crops)];
        let f = inputs.map((x) => { const g = noGrad(() => encoder.encode(x, feature, o.regions)); return o.flip ? g.add(noGrad(() => encoder.encode(x.flip(3), feature, o.regions))).mul(0.5) : g; })
          .reduce((x, y) => x.add(y));
        if (inputs.length > 1) f = f.div(inputs.length);
        if (o.normalize ?? true) f = F.normalize(f, { dim: 1 });
        return (f.data() as Float32Array).slice();
      });
      views[0]!.dispose();
      const kept = keepRows.length === good.length ? rows : pick(rows, keepRows, dim);
      const keptPaths = keepRows.map((i) => good[i]!);
      if (o.writer) o.writer.add(kept, keptPaths);
      else parts.push(kept);
      paths.push(...keptPaths);
    }
    o.onProgress?.(Math.min(files.length, start + bs), files.length);
  }
  const vectors = new Float32Array(o.writer ? 0 : paths.length * dim);
  let off = 0;
  for (const p of parts) { vectors.set(p, off); off += p.length; }
  return { paths, vectors, dim, skipped };
}

/** The crops of a batch (N × C × H × W) that `crops` asks for, each resized back to H × W. */
function cropViews(x: Tensor, crops: EmbedOpts['crops']): Tensor[] {
  if (!crops) return [];
  const [, , h, w] = x.shape as [number, number, number, number];
  const ch = Math.round((crops.scale ?? 0.9) * h);
  const cw = Math.round((crops.scale ?? 0.9) * w);
  const at = (top: number, left: number): Tensor => F.interpolate(x.narrow(2, top, ch).narrow(3, left, cw), { size: [h, w], mode: 'bilinear' });
  const c = at(Math.floor((h - ch) / 2), Math.floor((w - cw) / 2));
  return crops.kind === 'center' ? [c] : [c, at(0, 0), at(0, w - cw), at(h - ch, 0), at(h - ch, w - cw)];
}

function pick(rows: Float32Array, idx: number[], dim: number): Float32Array {
  const out = new Float32Array(idx.length * dim);
  idx.forEach((r, j) => out.set(rows.subarray(r * dim, (r + 1) * dim), j * dim));
  return out;
}
