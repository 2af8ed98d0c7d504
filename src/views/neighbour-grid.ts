// A PNG grid of kNN retrievals for people to look at: one row a query image, then its nearest bank images,
// each framed green when its label matches the query's and red when not.
import sharp from 'sharp';
import { tidy } from '../torch/index.js';
import { decodeImage, type ImageDataset } from '../data/index.js';

export interface NeighbourGridOpts {
  /** Cell size in pixels (each image is scaled to it, nearest for small images). Default 64. */
  cell?: number;
}

/** The pixels of dataset samples `idx` at `size`×`size` RGB (uint8 HWC each). */
async function pixels(ds: ImageDataset, idx: readonly number[], size: number): Promise<Uint8Array[]> {
  const src = await ds.prepare();
  if (src.kind === 'decoded') {
    const flat = tidy(() => src.images.take(idx).permute(0, 2, 3, 1).contiguous().data() as Uint8Array);
    const [, , H, W] = src.images.shape;
    return Promise.all(
      idx.map(async (_, r) => {
        const raw = flat.subarray(r * H * W * 3, (r + 1) * H * W * 3);
        const b = await sharp(raw, { raw: { width: W, height: H, channels: 3 } })
          .resize(size, size, { fit: 'fill', kernel: H < size ? 'nearest' : 'lanczos3' })
          .raw()
          .toBuffer();
        return new Uint8Array(b);
      }),
    );
  }
  return Promise.all(
    idx.map(async (i) => (await decodeImage(src.paths[i]!, { resize: { width: size, height: size } })).data),
  );
}

/**
 * Renders `queryIdx.length` rows: the query (from `queries`, framed blue) then its neighbours `neighbours[r]`
 * (indices into `bank`). Returns PNG bytes and the grid size in pixels.
 */
export async function renderNeighbourGrid(
  queries: ImageDataset,
  bank: ImageDataset,
  queryIdx: readonly number[],
  neighbours: readonly (readonly number[])[],
  o: NeighbourGridOpts = {},
): Promise<{ png: Buffer; width: number; height: number }> {
  const cell = o.cell ?? 64;
  const border = 3,
    gap = 6;
  const cols = 1 + Math.max(0, ...neighbours.map((n) => n.length));
  const rows = queryIdx.length;
  if (!rows) throw new Error('renderNeighbourGrid: no queries');
  const box = cell + 2 * border;
  const W = cols * box + (cols + 1) * gap + gap; // an extra gap between the query and its neighbours
  const H = rows * box + (rows + 1) * gap;
  const img = new Uint8Array(W * H * 3).fill(255);
  const q = await pixels(queries, queryIdx, cell);
  const nb = await pixels(bank, neighbours.flat(), cell);
  const put = (px: Uint8Array, r: number, c: number, frame: [number, number, number]): void => {
    const x0 = gap + c * (box + gap) + (c > 0 ? gap : 0),
      y0 = gap + r * (box + gap);
    for (let y = 0; y < box; y++) {
      for (let x = 0; x < box; x++) {
        const d = ((y0 + y) * W + x0 + x) * 3;
        const inside = x >= border && y >= border && x < border + cell && y < border + cell;
        if (inside) {
          const s = ((y - border) * cell + (x - border)) * 3;
          img[d] = px[s]!;
          img[d + 1] = px[s + 1]!;
          img[d + 2] = px[s + 2]!;
        } else {
          img[d] = frame[0];
          img[d + 1] = frame[1];
          img[d + 2] = frame[2];
        }
      }
    }
  };
  let k = 0;
  for (let r = 0; r < rows; r++) {
    put(q[r]!, r, 0, [42, 106, 216]);
    const ql = queries.labels?.[queryIdx[r]!];
    neighbours[r]!.forEach((b, c) => {
      const same = ql !== undefined && bank.labels?.[b] === ql;
      put(nb[k++]!, r, c + 1, same ? [40, 160, 70] : [210, 50, 50]);
    });
  }
  const png = await sharp(img, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
  return { png, width: W, height: H };
}
