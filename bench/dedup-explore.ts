// Exploration (temporary): per edit family, the cosine (whitened default embedding) and pHash distance of planted
// pairs, and the precision/recall of "cos ≥ T", "ham ≤ H" and their union.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { Rng } from '../src/data/index.js';
import { embedImages, loadEncoder } from '../src/eval/index.js';
import { applyWhitening, fitWhitening, findDuplicates, groupPairs, idOf, fileFacts, prepareVectors, type FileRow } from '../src/collections/index.js';
import { hashPairs, phashImage, type PHash } from '../src/collections/phash.js';
import { EDITS, editCopy, type Edit } from './dedup-edits.js';

const root = resolve(new URL('../..', import.meta.url).pathname);
const { values: a } = parseArgs({ options: {
  pretrained: { type: 'string' }, originals: { type: 'string', default: '600' }, rest: { type: 'string', default: '1400' },
  seed: { type: 'string', default: '0' }, side: { type: 'string', default: '96' }, half: { type: 'string', default: '0' },
} });
const data = resolve(root, '..', 'shared', 'datasets', 'cifar10', 'test');
const M = Number(a.originals), R = Number(a.rest), side = Number(a.side);
const tmp = mkdtempSync(join(tmpdir(), 'moco-dedup-explore-'));
try {
  const all = readdirSync(data).sort().flatMap((c) => readdirSync(join(data, c)).sort().map((f) => join(data, c, f)));
  const perm = new Rng(12345, 'dedup-split').permutation(all.length);
  const half = Array.from(perm).filter((_, i) => i % 2 === Number(a.half));
  const rng = new Rng(Number(a.seed), 'dedup-set');
  const pick = Array.from(rng.permutation(half.length).slice(0, M + R), (i) => all[half[i]!]!);
  const dir = join(tmp, 'set');
  mkdirSync(dir);
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
  const files = readdirSync(dir).sort().map((f) => join(dir, f));
  const rows: FileRow[] = [];
  for (const p of files) rows.push({ id: idOf(p), path: p, label: null, ...await fileFacts(p) });
  const t0 = performance.now();
  const hashes: PHash[] = [];
  for (const f of files) hashes.push(await phashImage(f));
  console.error(`hashes ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const enc = loadEncoder(a.pretrained!);
  const t1 = performance.now();
  const e = await embedImages(enc, files, { batchSize: 128, feature: 'regions', flip: true, crops: { kind: 'five' }, normalize: false });
  console.error(`embed ${((performance.now() - t1) / 1000).toFixed(1)} s`);
  const v0 = prepareVectors(e.vectors, e.dim, {});
  const w = fitWhitening(v0, e.dim, { shrinkage: 0 });
  const v = applyWhitening(w, v0);
  const idx = new Map(files.map((f, i) => [f, i]));
  const perEdit = new Map<Edit, { cos: number[]; ham: number[] }>();
  const dotv = (x: number, y: number): number => { let s = 0; for (let j = 0; j < w.outDim; j++) s += v[x * w.outDim + j]! * v[y * w.outDim + j]!; return s; };
  const hp = hashPairs(hashes, 11);
  const hamOf = new Map(hp.map(([x, y, d]) => [`${x},${y}`, d]));
  for (const [pair, ed] of truth) {
    const [p, q] = pair.split('\n').map((s) => idx.get(s)!) as [number, number];
    const k = p < q ? `${p},${q}` : `${q},${p}`;
    const r = perEdit.get(ed) ?? { cos: [], ham: [] };
    r.cos.push(dotv(p, q));
    r.ham.push(hamOf.get(k) ?? 99);
    perEdit.set(ed, r);
  }
  for (const [ed, r] of perEdit) {
    const q = (xs: number[], f: number): number => [...xs].sort((x, y) => x - y)[Math.floor(f * (xs.length - 1))]!;
    console.log(`${ed.padEnd(10)} cos p10 ${q(r.cos, 0.1).toFixed(3)} p50 ${q(r.cos, 0.5).toFixed(3)} | ham p50 ${q(r.ham, 0.5)} p80 ${q(r.ham, 0.8)} p90 ${q(r.ham, 0.9)} | ham≤8 ${(r.ham.filter((x) => x <= 8).length / r.ham.length).toFixed(2)} ≤10 ${(r.ham.filter((x) => x <= 10).length / r.ham.length).toFixed(2)}`);
  }
  // False hash pairs at each H.
  for (const H of [4, 6, 8, 10, 11]) {
    const fp = hp.filter(([x, y, d]) => d <= H && !truth.has([files[x]!, files[y]!].sort().join('\n')) && rows[x]!.sha256 !== rows[y]!.sha256).length;
    console.log(`H ${H}: false hash pairs ${fp}`);
  }
  for (const T of (process.env.TS ?? '0.5,0.55,0.6,0.65,0.7').split(',').map(Number)) {
    for (const H of (process.env.HS ?? '-1,6,8,10').split(',').map(Number)) {
      const d = await findDuplicates(rows, v, w.outDim, { threshold: T, ...(H >= 0 ? { hashes, hashDistance: H } : {}) });
      const u = groupPairs(d.groups);
      let tp = 0;
      const per: Record<string, number> = {};
      for (const p of u) { const k = truth.get(p); if (k) { tp++; per[k] = (per[k] ?? 0) + 1; } }
      const n = M / EDITS.length;
      console.log(`T ${T} H ${H}: P ${(tp / u.size).toFixed(3)} R ${(tp / truth.size).toFixed(3)} | ${EDITS.map((ed) => `${ed} ${((per[ed] ?? 0) / n).toFixed(2)}`).join(' ')}`);
    }
  }
  enc.dispose();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
