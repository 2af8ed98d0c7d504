// The near-duplicate edit families that `moco dedup` is measured on (docs/collections.md): what a photo archive's
// copies go through. Each copy is made from an original with sharp; every parameter is drawn from the given
// seeded Rng, so a set is reproducible from its seed and a second seed gives other parameters.
import sharp from 'sharp';
import type { Rng } from '../src/data/index.js';

/** The edit families, by group. */
export const FAMILIES = {
  photometric: ['brightness', 'contrast', 'saturation', 'gamma'],
  geometric: ['crop', 'resize', 'rotate', 'flip', 'border'],
  codec: ['jpeg', 'webp', 'png'],
} as const;

export type Edit = (typeof FAMILIES)[keyof typeof FAMILIES][number];

export const EDITS: readonly Edit[] = Object.values(FAMILIES).flat();

/** The group an edit belongs to. */
export const groupOf = (e: Edit): keyof typeof FAMILIES =>
  (Object.keys(FAMILIES) as (keyof typeof FAMILIES)[]).find((g) => (FAMILIES[g] as readonly string[]).includes(e))!;

/** A value in [lo, hi) from the Rng. */
const between = (rng: Rng, lo: number, hi: number): number => lo + (hi - lo) * rng.random();

/** A factor up to ±`amount` away from 1, at least `min` away (so that every copy is really edited). */
const factor = (rng: Rng, amount: number, min = 0.1): number =>
  1 + (rng.random() < 0.5 ? 1 : -1) * between(rng, min, amount);

/**
 * Writes an edited copy of `src` to `out` + extension; returns the file and a description of the edit.
 * Ranges: brightness, contrast, saturation and gamma ±10–30%; crops keeping 80–95% of each side at a random
 * offset; resizes to 0.5–2× the side; rotations by 3–10° either way (corners filled with the mean colour,
 * cropped back to the frame); a mirror image; a border of 4–10% of the side in a random grey or colour; JPEG
 * quality 20–90, WebP quality 40–90, and the pixels losslessly as PNG.
 */
export async function editCopy(
  src: string,
  out: string,
  edit: Edit,
  rng: Rng,
): Promise<{ file: string; what: string }> {
  const meta = await sharp(src).metadata();
  const width = meta.width ?? 32;
  const height = meta.height ?? 32;
  const png = async (img: ReturnType<typeof sharp>, what: string): Promise<{ file: string; what: string }> => {
    await img.png().toFile(`${out}.png`);
    return { file: `${out}.png`, what };
  };
  switch (edit) {
    case 'brightness': {
      const f = factor(rng, 0.3);
      return png(sharp(src).modulate({ brightness: f }), `brightness ×${f.toFixed(2)}`);
    }
    case 'contrast': {
      const f = factor(rng, 0.3);
      return png(sharp(src).linear(f, 128 * (1 - f)), `contrast ×${f.toFixed(2)}`);
    }
    case 'saturation': {
      const f = factor(rng, 0.3);
      return png(sharp(src).modulate({ saturation: f }), `saturation ×${f.toFixed(2)}`);
    }
    case 'gamma': {
      const g = factor(rng, 0.3);
      const { data, info } = await sharp(src).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const lut = Uint8Array.from({ length: 256 }, (_, v) => Math.round(255 * (v / 255) ** g));
      for (let i = 0; i < data.length; i++) data[i] = lut[data[i]!]!;
      return png(
        sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 3 } }),
        `gamma ${g.toFixed(2)}`,
      );
    }
    case 'crop': {
      const keep = between(rng, 0.8, 0.95);
      const w = Math.round(keep * width);
      const h = Math.round(keep * height);
      return png(
        sharp(src).extract({ left: rng.int(0, width - w), top: rng.int(0, height - h), width: w, height: h }),
        `crop keeping ${(keep * 100).toFixed(0)}%`,
      );
    }
    case 'resize': {
      const s = rng.random() < 0.5 ? between(rng, 0.5, 0.8) : between(rng, 1.25, 2);
      return png(
        sharp(src).resize(Math.max(8, Math.round(s * width)), Math.max(8, Math.round(s * height)), {
          kernel: 'lanczos3',
          fit: 'fill',
        }),
        `resize ×${s.toFixed(2)}`,
      );
    }
    case 'rotate': {
      const deg = (rng.random() < 0.5 ? 1 : -1) * between(rng, 3, 10);
      const st = await sharp(src).stats();
      const bg = {
        r: Math.round(st.channels[0]!.mean),
        g: Math.round(st.channels[1]!.mean),
        b: Math.round(st.channels[2]!.mean),
      };
      const rot = await sharp(src).rotate(deg, { background: bg }).toBuffer({ resolveWithObject: true });
      const { width: rw = width, height: rh = height } = rot.info;
      return png(
        sharp(rot.data).extract({
          left: Math.floor((rw - width) / 2),
          top: Math.floor((rh - height) / 2),
          width,
          height,
        }),
        `rotate ${deg.toFixed(1)}°`,
      );
    }
    case 'flip':
      return png(sharp(src).flop(), 'mirror');
    case 'border': {
      const b = Math.max(1, Math.round(between(rng, 0.04, 0.1) * Math.min(width, height)));
      const grey = rng.int(0, 255);
      const colour =
        rng.random() < 0.5
          ? { r: grey, g: grey, b: grey }
          : { r: rng.int(0, 255), g: rng.int(0, 255), b: rng.int(0, 255) };
      return png(sharp(src).extend({ top: b, bottom: b, left: b, right: b, background: colour }), `border ${b}px`);
    }
    case 'jpeg': {
      const q = rng.int(20, 90);
      await sharp(src).jpeg({ quality: q }).toFile(`${out}.jpg`);
      return { file: `${out}.jpg`, what: `JPEG q${q}` };
    }
    case 'webp': {
      const q = rng.int(40, 90);
      await sharp(src).webp({ quality: q }).toFile(`${out}.webp`);
      return { file: `${out}.webp`, what: `WebP q${q}` };
    }
    case 'png':
      return png(sharp(src), 'PNG of the pixels');
  }
}
