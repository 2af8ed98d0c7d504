// The dedup acceptance set and its precision/recall curve: M CIFAR-10 test images each get one transformed copy
// made with sharp, cycling through five transforms — resize to 48 px (Lanczos), JPEG quality 40, a crop keeping
// 90% of width and height at a seeded offset, a rotation by ±5° (seeded sign, corners filled with the image's
// mean colour, cropped back to the original frame), and a horizontal flip (copies other than the JPEG-40 one are
// written as PNG, so they carry no extra compression) — mixed with R untouched other test images. Everything is
// embedded with the given encoder, once per feature (backbone, head, or the region descriptor, whose blocks
// give the `regions`, `regions-l3`, `layers34` and `global` variants), flip setting and crop setting
// (+flip, +crop1: centre 90% crop averaged in, +crop5: centre and corners), then optionally centred (+center) or
// PCA-whitened on the set itself (+whiten, +whiten<α> shrinkage α, +d<k> components); `moco dedup`'s default is
// regions-l3+flip+crop5+whiten0. `findDuplicates` (complete linkage, exact candidates) runs at each threshold,
// and the duplicate pairs found are scored against the planted (original, copy) pairs. One JSON line: the curve,
// per-transform recall at each threshold, and the threshold with the best F1.
//   OMP_NUM_THREADS=1 node dist/bench/collections-dedup.js --pretrained CKPT [--variants regions-l3+flip+crop5+whiten0,backbone+flip,…]
//     [--thresholds …] [--originals 1000] [--rest 2000]   (unwhitened variants need thresholds ≥ 0.9: low ones make huge groups)
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { Rng } from '../src/data/index.js';
import { embedImages, loadEncoder, type FeatureKind } from '../src/eval/index.js';
import { imagePaths } from '../src/data/walk.js';
import { DEFAULT_THRESHOLD, applyWhitening, fitWhitening, findDuplicates, groupPairs, idOf, fileFacts, prepareVectors, type FileRow } from '../src/collections/index.js';
import { round , benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('collections-dedup')) process.exit(0);

const root = resolve(new URL('../..', import.meta.url).pathname);
const { values: a } = parseArgs({ options: {
  pretrained: { type: 'string' }, originals: { type: 'string', default: '1000' }, rest: { type: 'string', default: '2000' },
  data: { type: 'string', default: resolve(root, '..', 'shared', 'datasets', 'cifar10', 'test') }, seed: { type: 'string', default: '0' },
  variants: { type: 'string', default: 'regions-l3+flip+crop5+whiten0,regions-l3+flip+whiten0,global+flip+whiten0' },
  thresholds: { type: 'string', default: '0.4,0.45,0.5,0.55,0.6,0.625,0.65,0.675,0.7,0.725,0.75,0.8,0.85,0.9' },
} });
if (!a.pretrained) throw new Error('bench/collections-dedup: --pretrained CKPT is required (an encoder whose features are invariant enough to the transforms)');
const M = Number(a.originals);
const R = Number(a.rest);
const TRANSFORMS = ['resize48', 'jpeg40', 'crop90', 'rotate5', 'flip'] as const;

async function transform(src: string, out: string, kind: typeof TRANSFORMS[number], rng: Rng): Promise<string> {
  const im = sharp(src);
  const { width = 32, height = 32 } = await im.metadata();
  switch (kind) {
    case 'resize48': await im.resize(48, 48, { kernel: 'lanczos3' }).png().toFile(`${out}.png`); return `${out}.png`;
    case 'jpeg40': await im.jpeg({ quality: 40 }).toFile(`${out}.jpg`); return `${out}.jpg`;
    case 'crop90': {
      const w = Math.round(0.9 * width);
      const h = Math.round(0.9 * height);
      await im.extract({ left: rng.int(0, width - w), top: rng.int(0, height - h), width: w, height: h }).png().toFile(`${out}.png`);
      return `${out}.png`;
    }
    case 'rotate5': {
      const st = await sharp(src).stats();
      const bg = { r: Math.round(st.channels[0]!.mean), g: Math.round(st.channels[1]!.mean), b: Math.round(st.channels[2]!.mean) };
      const rot = await sharp(src).rotate(rng.bernoulli(0.5) ? 5 : -5, { background: bg }).toBuffer({ resolveWithObject: true });
      const { width: rw = width, height: rh = height } = rot.info;
      await sharp(rot.data).extract({ left: Math.floor((rw - width) / 2), top: Math.floor((rh - height) / 2), width, height }).png().toFile(`${out}.png`);
      return `${out}.png`;
    }
    default: await im.flop().png().toFile(`${out}.png`); return `${out}.png`;
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'moco-bench-dedup-'));
try {
  const rng = new Rng(Number(a.seed), 'dedup-set');
  const all = readdirSync(a.data!).sort().flatMap((c) => readdirSync(join(a.data!, c)).sort().map((f) => join(a.data!, c, f)));
  const pick = rng.permutation(all.length).slice(0, M + R);
  const truth = new Map<string, typeof TRANSFORMS[number]>();
  const dir = join(tmp, 'set');
  mkdirSync(dir);
  for (let i = 0; i < M + R; i++) {
    const src = all[pick[i]!]!;
    const name = `${String(i).padStart(5, '0')}`;
    symlinkSync(src, join(dir, `${name}.jpg`));
    if (i < M) {
      const kind = TRANSFORMS[i % TRANSFORMS.length]!;
      const copy = await transform(src, join(dir, `${name}-${kind}`), kind, rng);
      truth.set([join(dir, `${name}.jpg`), copy].sort().join('\n'), kind);
    }
  }
  const enc = loadEncoder(a.pretrained);
  const files = imagePaths([dir]);
  const rows: FileRow[] = [];
  for (const p of files) rows.push({ id: idOf(p), path: p, label: null, ...await fileFacts(p) });
  // Each variant: which output (backbone, head, or blocks of the region descriptor), flip-averaged or not, then
  // centred on the set's mean (+center) or PCA-whitened on the set (+whiten, +whiten<α> for shrinkage α,
  // +d<k> to keep k components), or neither, before normalising.
  // Region features come from one embedding (bands 2 + layer3) whose blocks [g4, band0, band1, g3] are sliced.
  const REGION_BLOCKS: Record<string, string[]> = { regions: ['g4', 'b0', 'b1'], 'regions-l3': ['g4', 'b0', 'b1', 'g3'], layers34: ['g4', 'g3'], global: ['g4'] };
  const variants = a.variants!.split(',').map((v) => {
    const [feature, ...mods] = v.split('+');
    if (feature !== 'backbone' && feature !== 'head' && !(feature! in REGION_BLOCKS)) throw new Error(`--variants: '${v}': the feature must be backbone, head or one of ${Object.keys(REGION_BLOCKS).join(', ')}`);
    let whiten: { shrinkage?: number; dims?: number } | null = null;
    const w0 = (): { shrinkage?: number; dims?: number } => whiten ?? {};
    for (const m of mods) {
      const w = /^whiten([0-9.]*)$/.exec(m);
      const d = /^d([0-9]+)$/.exec(m);
      if (w) whiten = { ...w0(), ...(w[1] ? { shrinkage: Number(w[1]) } : {}) };
      else if (d) whiten = { ...w0(), dims: Number(d[1]) };
      else if (m !== 'flip' && m !== 'center' && m !== 'crop1' && m !== 'crop5') throw new Error(`--variants: '${v}': modifiers are +flip, +crop1, +crop5, +center, +whiten[α], +d<k>`);
    }
    return { name: v, feature: feature!, flip: mods.includes('flip'), crops: mods.includes('crop5') ? 'five' as const : mods.includes('crop1') ? 'center' as const : null, center: mods.includes('center'), whiten };
  });
  const raw = new Map<string, { vectors: Float32Array; dim: number; s: number }>();
  const thresholds = a.thresholds!.split(',').map(Number);
  const results: Record<string, unknown>[] = [];
  for (const v of variants) {
    const regionsOf = REGION_BLOCKS[v.feature];
    const key = `${regionsOf ? 'regions' : v.feature}${v.flip ? '+flip' : ''}${v.crops ? `+${v.crops}` : ''}`;
    if (!raw.has(key)) {
      const t0 = performance.now();
      const e = await embedImages(enc, files, { batchSize: 128, feature: (regionsOf ? 'regions' : v.feature) as FeatureKind, regions: { bands: 2, layer3: true }, flip: v.flip, ...(v.crops ? { crops: { kind: v.crops } } : {}), normalize: false });
      if (e.paths.length !== files.length) throw new Error('bench/collections-dedup: some images were skipped');
      raw.set(key, { vectors: e.vectors, dim: e.dim, s: (performance.now() - t0) / 1000 });
    }
    let r = raw.get(key)!;
    if (regionsOf) {
      const c4 = enc.dim('backbone');
      const at: Record<string, [number, number]> = { g4: [0, c4], b0: [c4, 2 * c4], b1: [2 * c4, 3 * c4], g3: [3 * c4, 3 * c4 + c4 / 2] };
      const dim = regionsOf.reduce((s, b) => s + at[b]![1] - at[b]![0], 0);
      const n = r.vectors.length / r.dim;
      const out = new Float32Array(n * dim);
      for (let i = 0; i < n; i++) {
        let o = i * dim;
        for (const b of regionsOf) { const [s0, s1] = at[b]!; out.set(r.vectors.subarray(i * r.dim + s0, i * r.dim + s1), o); o += s1 - s0; }
      }
      r = { vectors: out, dim, s: r.s };
    }
    let vectors = prepareVectors(r.vectors, r.dim, { center: v.center });
    let dim = r.dim;
    if (v.whiten) {
      const w = fitWhitening(vectors, r.dim, v.whiten);
      vectors = applyWhitening(w, vectors);
      dim = w.outDim;
    }
    const curve: Record<string, unknown>[] = [];
    for (const t of thresholds) {
      const d = await findDuplicates(rows, vectors, dim, { threshold: t });
      const found = groupPairs(d.groups);
      let tp = 0;
      const perKind: Record<string, number> = Object.fromEntries(TRANSFORMS.map((k) => [k, 0]));
      for (const p of found) { const k = truth.get(p); if (k) { tp++; perKind[k]!++; } }
      const precision = found.size ? tp / found.size : 1;
      const recall = tp / truth.size;
      curve.push({
        threshold: t, pairs: found.size, precision: round(precision, 4), recall: round(recall, 4), f1: round(precision + recall ? 2 * precision * recall / (precision + recall) : 0, 4),
        recallByTransform: Object.fromEntries(TRANSFORMS.map((k) => [k, round(perKind[k]! / (M / TRANSFORMS.length), 3)])),
      });
      console.error(`bench/collections-dedup: ${v.name} ${JSON.stringify(curve[curve.length - 1])}`);
    }
    const best = curve.reduce((x, y) => ((y.f1 as number) > (x.f1 as number) ? y : x));
    const atDefault = thresholds.includes(DEFAULT_THRESHOLD) ? curve.find((c) => c.threshold === DEFAULT_THRESHOLD) : null;
    results.push({ variant: v.name, dim, embedS: round(r.s, 1), curve, bestF1: best, atDefault });
  }
  enc.dispose();
  console.log(JSON.stringify({ bench: 'collections-dedup', pretrained: a.pretrained, originals: M, copies: truth.size, rest: R, images: rows.length, transforms: TRANSFORMS, defaultThreshold: DEFAULT_THRESHOLD, results }));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
