// A PNG grid of original images and their augmented views, for people to see what a preset does.
import sharp from 'sharp';
import { tensor, tidy, type Tensor } from '../torch/index.js';
import { Augmentation, preset, type PresetName } from './augment.js';
import { resizedCrop } from './augment-ops.js';
import { rowsOf } from './decoded-images.js';
import { decodeImage } from './decode.js';
import { openDataset } from './datasets/open.js';
import { Rng } from './rng.js';

export interface PreviewOpts {
  preset?: PresetName;
  /** Output PNG path. */
  out: string;
  /** Rows (images). Default 8. */
  images?: number;
  /** Augmented views an image. Default 2 (query, key). */
  views?: number;
  /** View size in pixels; default the preset's (32 for cifar presets on 32-px data). */
  size?: number;
  seed?: number;
  split?: 'train' | 'test';
}

/** Normalised N×3×S×S views → uint8 NHWC pixels. */
function toPixels(x: Tensor, mean: readonly number[], std: readonly number[]): Uint8Array {
  return tidy(() => {
    const ch = (v: readonly number[]): Tensor => tensor(Float32Array.from(v), { shape: [1, 3, 1, 1] });
    const m = x.mul(ch(std)).add(ch(mean)).clamp(0, 1).mul(255).round().to('uint8');
    return m.permute(0, 2, 3, 1).contiguous().data() as Uint8Array;
  });
}

/**
 * Renders `images` rows of [original | view 1 | … | view `views`] at the preset's size, upscaled (nearest) so a
 * cell is at least 128 px, with a 4-px gap. Returns the path and the grid size.
 */
export async function renderAugmentPreview(
  data: string,
  o: PreviewOpts,
): Promise<{ out: string; width: number; height: number; preset: string; dataset: string }> {
  const ds = openDataset(data, { split: o.split ?? 'train' });
  const src = await ds.prepare();
  const rows = Math.min(o.images ?? 8, ds.length);
  const nv = o.views ?? 2;
  const name = o.preset ?? 'mocov2';
  let size = o.size;
  if (size === undefined && src.kind === 'decoded' && src.images.shape[2] <= 64) size = src.images.shape[2];
  const aug = new Augmentation(preset(name, size === undefined ? {} : { size }));
  const S = aug.spec.size;
  const idx = new Rng(o.seed ?? 0, 'preview').permutation(ds.length).slice(0, rows);
  const rng = new Rng(o.seed ?? 0, 'preview-aug');
  let views: Tensor[];
  let originals: Uint8Array;
  if (src.kind === 'decoded') {
    const rows = src.images.take(idx);
    views = aug.fromMemory(rows, rowsOf(rows.shape[0]!), rng, nv);
    const [, , H, W] = src.images.shape;
    originals = tidy(
      () =>
        resizedCrop(
          rows,
          rowsOf(rows.shape[0]!),
          Array.from(idx, () => ({ left: 0, top: 0, width: W, height: H })),
          S,
        )
          .round()
          .clamp(0, 255)
          .to('uint8')
          .permute(0, 2, 3, 1)
          .contiguous()
          .data() as Uint8Array,
    );
    rows.dispose();
  } else {
    views = (await aug.fromFiles((i) => src.paths[i]!, idx, rng, nv)).views;
    originals = new Uint8Array(rows * S * S * 3);
    await Promise.all(
      Array.from(idx, async (i, r) =>
        originals.set((await decodeImage(src.paths[i]!, { resize: { width: S, height: S } })).data, r * S * S * 3),
      ),
    );
  }
  const cols = [originals, ...views.map((v) => toPixels(v, aug.spec.mean, aug.spec.std))];
  views.forEach((v) => v.dispose());
  const scale = Math.max(1, Math.ceil(128 / S));
  const cell = S * scale,
    gap = 4;
  const W = cols.length * cell + (cols.length + 1) * gap,
    H = rows * cell + (rows + 1) * gap;
  const img = new Uint8Array(W * H * 3).fill(255);
  cols.forEach((px, c) => {
    for (let r = 0; r < rows; r++) {
      for (let y = 0; y < cell; y++) {
        for (let x = 0; x < cell; x++) {
          const s = ((r * S + Math.floor(y / scale)) * S + Math.floor(x / scale)) * 3;
          const d = ((gap + r * (cell + gap) + y) * W + gap + c * (cell + gap) + x) * 3;
          img[d] = px[s]!;
          img[d + 1] = px[s + 1]!;
          img[d + 2] = px[s + 2]!;
        }
      }
    }
  });
  await sharp(img, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toFile(o.out);
  const description = ds.description;
  ds.dispose();
  return { out: o.out, width: W, height: H, preset: name, dataset: description };
}
