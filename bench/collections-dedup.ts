// The near-duplicate sets and their figures (docs/collections.md). A set: CIFAR-10 test images upscaled to
// 96 px (Lanczos, JPEG q95, as photos), M of them with one edited copy each, cycling through the twelve edit
// families of dedup-edits.ts (photometric, geometric, codec), mixed with R other untouched images. Two sets:
// the calibration set (seed 0, one half of the test images), on which the defaults were chosen, and the held-out
// set (seed 1: the other half of the images and other edit parameters), scored after the choice.
// For each set: the precision/recall curve over cosine thresholds with and without the pHash stage (in process,
// the pipeline `moco dedup` runs: region features flip- and five-crop-averaged, PCA-whitened on the set), recall
// per edit, and then the commands a user runs, as written: `moco dedup FOLDER --pretrained CKPT` and
// `moco index FOLDER --db DB` → `moco dedup --db DB`, at their defaults. One JSON line.
//   node dist/bench/collections-dedup.js --pretrained CKPT [--originals 600] [--rest 1400] [--sets calibration,heldout]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { Rng } from '../src/data/index.js';
import { embedImages, loadEncoder } from '../src/eval/index.js';
import { imagePaths } from '../src/data/walk.js';
import {
  DEFAULT_EMBEDDING,
  DEFAULT_HASH_DISTANCE,
  DEFAULT_THRESHOLD,
  applyWhitening,
  fitWhitening,
  findDuplicates,
  groupPairs,
  hashFiles,
  idOf,
  fileFacts,
  type DupGroup,
  type FileRow,
} from '../src/collections/index.js';
import { EDITS, FAMILIES, editCopy, type Edit } from './dedup-edits.js';
import { round } from './common.js';

const root = resolve(new URL('../..', import.meta.url).pathname);
const { values: a } = parseArgs({
  options: {
    pretrained: { type: 'string' },
    originals: { type: 'string', default: '600' },
    rest: { type: 'string', default: '1400' },
    sets: { type: 'string', default: 'calibration,heldout' },
    side: { type: 'string', default: '96' },
    thresholds: { type: 'string', default: '0.4,0.45,0.5,0.55,0.6,0.65,0.7' },
    data: { type: 'string', default: resolve(root, '..', 'shared', 'datasets', 'cifar10', 'test') },
  },
});
if (!a.pretrained)
  throw new Error('bench/collections-dedup: --pretrained CKPT is required (the E1 encoder of docs/collections.md)');
const M = Number(a.originals);
const R = Number(a.rest);
const side = Number(a.side);
const SETS = { calibration: { seed: 0, half: 0 }, heldout: { seed: 1, half: 1 } } as const;
const CLI = join(root, 'dist', 'src', 'cli', 'main.js');

/** Builds a set in `dir`; returns the planted pairs (sorted path pair → edit). */
async function buildSet(dir: string, seed: number, half: number): Promise<Map<string, Edit>> {
  const all = readdirSync(a.data!)
    .sort()
    .flatMap((c) =>
      readdirSync(join(a.data!, c))
        .sort()
        .map((f) => join(a.data!, c, f)),
    );
  // The test images split in two fixed halves: the two sets never share an image.
  const perm = new Rng(12345, 'dedup-split').permutation(all.length);
  const mine = Array.from(perm).filter((_, i) => i % 2 === half);
  const rng = new Rng(seed, 'dedup-set');
  const pick = Array.from(rng.permutation(mine.length).slice(0, M + R), (i) => all[mine[i]!]!);
  mkdirSync(dir, { recursive: true });
  const truth = new Map<string, Edit>();
  for (let i = 0; i < M + R; i++) {
    const o = join(dir, `${String(i).padStart(5, '0')}.jpg`);
    await sharp(pick[i]!).resize(side, side, { kernel: 'lanczos3' }).jpeg({ quality: 95 }).toFile(o);
    if (i < M) {
      const e = EDITS[i % EDITS.length]!;
      const c = await editCopy(o, join(dir, `${String(i).padStart(5, '0')}-${e}`), e, rng);
      truth.set([o, c.file].sort().join('\n'), e);
    }
  }
  return truth;
}

/** Precision, recall and recall per edit and per family of the pairs in `groups`. */
function score(
  groups: readonly Pick<DupGroup, 'keeper' | 'duplicates'>[],
  truth: Map<string, Edit>,
): Record<string, unknown> {
  const found = groupPairs(groups as DupGroup[]);
  let tp = 0;
  const per: Record<string, number> = {};
  for (const p of found) {
    const e = truth.get(p);
    if (e) {
      tp++;
      per[e] = (per[e] ?? 0) + 1;
    }
  }
  const each = M / EDITS.length;
  const byEdit = Object.fromEntries(EDITS.map((e) => [e, round((per[e] ?? 0) / each, 3)]));
  const byFamily = Object.fromEntries(
    Object.entries(FAMILIES).map(([f, es]) => [
      f,
      round(es.reduce((s, e) => s + (per[e] ?? 0), 0) / (es.length * each), 3),
    ]),
  );
  const precision = found.size ? tp / found.size : 1;
  const recall = tp / truth.size;
  return {
    pairs: found.size,
    precision: round(precision, 4),
    recall: round(recall, 4),
    f1: round(precision + recall ? (2 * precision * recall) / (precision + recall) : 0, 4),
    byFamily,
    byEdit,
  };
}

const cli = (args: string[]): string =>
  execFileSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
    env: { ...process.env, MOCO_NO_CACHE: '1' },
  });

const tmp = mkdtempSync(join(tmpdir(), 'moco-bench-dedup-'));
const out: Record<string, unknown> = {
  bench: 'collections-dedup',
  pretrained: resolve(a.pretrained),
  originals: M,
  rest: R,
  side,
  edits: EDITS,
  families: FAMILIES,
  defaults: { threshold: DEFAULT_THRESHOLD, hashDistance: DEFAULT_HASH_DISTANCE, embedding: DEFAULT_EMBEDDING },
};
try {
  const enc = loadEncoder(a.pretrained);
  for (const name of a.sets!.split(',') as (keyof typeof SETS)[]) {
    const s = SETS[name];
    if (!s) throw new Error(`--sets: '${name}' is not one of ${Object.keys(SETS).join(', ')}`);
    const dir = join(tmp, name);
    const truth = await buildSet(dir, s.seed, s.half);
    const files = imagePaths([dir]);
    const rows: FileRow[] = [];
    for (const p of files) rows.push({ id: idOf(p), path: p, label: null, ...(await fileFacts(p)) });
    const t0 = performance.now();
    const e = await embedImages(enc, files, {
      feature: DEFAULT_EMBEDDING.feature,
      flip: DEFAULT_EMBEDDING.flip,
      crops: { kind: DEFAULT_EMBEDDING.crops },
    });
    if (e.paths.length !== files.length) throw new Error('bench/collections-dedup: some images were skipped');
    const embedS = (performance.now() - t0) / 1000;
    const w = fitWhitening(e.vectors, e.dim, {});
    const v = applyWhitening(w, e.vectors);
    const t1 = performance.now();
    const hashes = await hashFiles(files);
    const hashS = (performance.now() - t1) / 1000;
    const curve: Record<string, unknown>[] = [];
    for (const t of a.thresholds!.split(',').map(Number)) {
      for (const withHash of [true, false]) {
        const d = await findDuplicates(rows, v, w.outDim, { threshold: t, ...(withHash ? { hashes } : {}) });
        curve.push({ threshold: t, hash: withHash ? DEFAULT_HASH_DISTANCE : null, ...score(d.groups, truth) });
        console.error(`bench/collections-dedup: ${name} ${JSON.stringify(curve[curve.length - 1])}`);
      }
    }
    // The commands as a user runs them, at their defaults.
    const viaFolder = JSON.parse(
      cli(['dedup', dir, '--pretrained', a.pretrained, '--out', join(tmp, `${name}-folder.json`)])
        .trim()
        .split('\n')
        .pop()!,
    ) as Record<string, unknown>;
    const folder = score(
      (JSON.parse(readFileSync(join(tmp, `${name}-folder.json`), 'utf8')) as { groups: DupGroup[] }).groups,
      truth,
    );
    const db = join(tmp, `${name}-db`);
    cli(['index', dir, '--pretrained', a.pretrained, '--db', db]);
    cli(['dedup', '--db', db, '--out', join(tmp, `${name}-db.json`)]);
    const viaDb = score(
      (JSON.parse(readFileSync(join(tmp, `${name}-db.json`), 'utf8')) as { groups: DupGroup[] }).groups,
      truth,
    );
    console.error(
      `bench/collections-dedup: ${name}: moco dedup FOLDER ${JSON.stringify(folder)}; index → dedup --db ${JSON.stringify(viaDb)}`,
    );
    out[name] = {
      seed: s.seed,
      imagesHalf: s.half,
      files: files.length,
      plantedPairs: truth.size,
      embedS: round(embedS, 1),
      hashS: round(hashS, 1),
      dedupFolder: { ...folder, ms: viaFolder.ms },
      indexThenDedupDb: viaDb,
      curve,
    };
  }
  enc.dispose();
  console.log(JSON.stringify(out));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
