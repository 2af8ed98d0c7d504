// Embeddings of image files with a loaded encoder: decoded and preprocessed in batches (sharp, the encoder's
// evaluation transform), L2-normalised backbone or head features; files that cannot be decoded are listed and
// left out rather than failing the run.
import { F, noGrad, tidy, type Tensor } from '../torch/index.js';
import { FileDataset, Loader, SkipLog, type Skipped } from '../data/index.js';
import { loadEncoder, type Encoder, type FeatureKind } from './encoder.js';
import { pickRows } from './embedding-file.js';
import type { RegionOpts } from './regions.js';

/** Where streamed rows go: an {@link EmbeddingWriter}, or anything with its `add` (awaited when it returns a promise). */
export interface RowSink {
  /** Rows (count × dim, row-major) and their image paths. */
  add(rows: Float32Array, paths: readonly string[]): void | Promise<void>;
}

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
  /**
   * Worker threads that decode batches off this thread (the pre-training loader's pool, as DataLoader workers);
   * default 0: the loader then prefetches the next two batches in sharp's libuv threads while the encoder runs.
   * On the shared 2-core machine (640 CIFAR-10 JPEGs, width-16 ResNet-18, one libtorch thread, twice each) that gave 158
   * images/s against 84–120 with 2 workers (their threads compete with the forward for the cores; each also
   * starts its own addon) and 97–132 for the old serial decode-then-forward loop, in one process, alternating.
   */
  workers?: number;
  /** Called after each batch with (files done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Receives each batch's rows as they are computed (streaming to a file or a table); without it rows are collected. */
  writer?: RowSink;
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

/**
 * Embeds image files with `encoder` in its evaluation preprocessing (CIFAR-stem encoders: the image resized to
 * 32×32; others: Resize(256)+CenterCrop(224)). Returns the vectors in file order, minus unreadable files.
 */
export async function embedImages(encoder: Encoder, files: readonly string[], o: EmbedOpts = {}): Promise<Embedded> {
  const feature = o.feature ?? 'backbone';
  const dim = encoder.dim(feature, o.regions);
  const bs = o.batchSize ?? 64;
  const pre = encoder.preprocess();
  const log = new SkipLog(() => undefined);
  const skipped: Skipped[] = [];
  const paths: string[] = [];
  const parts: Float32Array[] = [];
  if (files.length) {
    // Files stay files (no whole-set decode into memory): batches b+1, b+2 decode while batch b runs through the
    // encoder. Unreadable files come back as gray rows, reported to `log`, and are dropped here.
    const loader = new Loader(new FileDataset(files, null, null, 'embed'), {
      batchSize: bs,
      shuffle: false,
      dropLast: false,
      augment: pre.augment,
      augmentOpts: pre.augmentOpts,
      fileWorkers: o.workers ?? 0,
      unreadable: 'blank',
      prepare: { memoryBudget: 0, log },
    });
    try {
      let done = 0;
      for await (const b of loader.epoch(0)) {
        const batchPaths = Array.from(b.indices, (i) => files[i]!);
        const gray = new Uint8Array(batchPaths.length);
        for (const i of b.unreadable) {
          gray[i] = 1;
          const p = batchPaths[i]!;
          const s = { path: p, reason: log.reasonOf(p) ?? 'undecodable' };
          skipped.push(s);
          o.onSkip?.(s);
        }
        const keepRows = batchPaths.flatMap((_, i) => (gray[i] ? [] : [i]));
        const rows = keepRows.length
          ? tidy(() => {
              const inputs = [b.views[0]!, ...cropViews(b.views[0]!, o.crops)];
              let f = inputs
                .map((x) => {
                  const g = noGrad(() => encoder.encode(x, feature, o.regions));
                  return o.flip ? g.add(noGrad(() => encoder.encode(x.flip(3), feature, o.regions))).mul(0.5) : g;
                })
                .reduce((x, y) => x.add(y));
              if (inputs.length > 1) f = f.div(inputs.length);
              if (o.normalize ?? true) f = F.normalize(f, { dim: 1 });
              return (f.data() as Float32Array).slice();
            })
          : new Float32Array(0);
        b.dispose();
        const kept = keepRows.length === batchPaths.length ? rows : pickRows(rows, keepRows, dim);
        const keptPaths = keepRows.map((i) => batchPaths[i]!);
        if (o.writer) await o.writer.add(kept, keptPaths);
        else parts.push(kept);
        paths.push(...keptPaths);
        done += batchPaths.length;
        o.onProgress?.(done, files.length);
      }
    } finally {
      await loader.close();
    }
  }
  const vectors = new Float32Array(o.writer ? 0 : paths.length * dim);
  let off = 0;
  for (const p of parts) {
    vectors.set(p, off);
    off += p.length;
  }
  return { paths, vectors, dim, skipped };
}

/** The crops of a batch (N × C × H × W) that `crops` asks for, each resized back to H × W. */
function cropViews(x: Tensor, crops: EmbedOpts['crops']): Tensor[] {
  if (!crops) return [];
  const [, , h, w] = x.shape as [number, number, number, number];
  const ch = Math.round((crops.scale ?? 0.9) * h);
  const cw = Math.round((crops.scale ?? 0.9) * w);
  const at = (top: number, left: number): Tensor =>
    F.interpolate(x.narrow(2, top, ch).narrow(3, left, cw), { size: [h, w], mode: 'bilinear' });
  const c = at(Math.floor((h - ch) / 2), Math.floor((w - cw) / 2));
  return crops.kind === 'center' ? [c] : [c, at(0, 0), at(0, w - cw), at(h - ch, 0), at(h - ch, w - cw)];
}

/**
 * {@link embedImages} with the encoder of a checkpoint (anything {@link loadEncoder} reads), loaded for this call
 * and disposed after it.
 */
export async function embedImagesWith(
  checkpoint: string,
  files: readonly string[],
  o: EmbedOpts = {},
): Promise<Embedded> {
  const encoder = loadEncoder(checkpoint);
  try {
    return await embedImages(encoder, files, o);
  } finally {
    encoder.dispose();
  }
}
