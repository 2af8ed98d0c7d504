// Dataset readers: ImageFolder rules, unlabeled folders, CIFAR binary, synthetic data, subsets and splits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  Cifar,
  ImageFolder,
  Synthetic,
  UnlabeledFolder,
  openDataset,
  splitIndices,
  subset,
  subsetIndices,
  trainValSplit,
  SYNTHETIC_CLASSES,
} from '../../src/data/datasets/index.js';
import { tmpDir } from '../helpers/pytorch.js';

let dir: string;
before(async () => {
  dir = tmpDir('moco-ds-');
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 255, g: 0, b: 0 } } })
    .png()
    .toBuffer();
  for (const [c, files] of [
    ['zebra', ['b.png', 'a.PNG']],
    ['apple', ['x.jpeg.png', 'note.txt', '.hidden.png']],
    ['Mango', ['m.png']],
  ] as const) {
    mkdirSync(join(dir, 'root', 'train', c, 'sub'), { recursive: true });
    for (const f of files) writeFileSync(join(dir, 'root', 'train', c, f), f.endsWith('.txt') ? 'x' : png);
  }
  writeFileSync(join(dir, 'root', 'train', 'apple', 'sub', 'deep.png'), png);
  mkdirSync(join(dir, 'root', 'val', 'apple'), { recursive: true });
  writeFileSync(join(dir, 'root', 'val', 'apple', 'v.png'), png);
  mkdirSync(join(dir, 'root', '.git'), { recursive: true });
  symlinkSync(join(dir, 'root', 'train', 'zebra'), join(dir, 'root', 'val', 'zebra'));
  mkdirSync(join(dir, 'flat'), { recursive: true });
  writeFileSync(join(dir, 'flat', 'one.png'), png);
  mkdirSync(join(dir, 'flat', 'more'));
  writeFileSync(join(dir, 'flat', 'more', 'two.webp'), await sharp(png).webp().toBuffer());
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('ImageFolder: sorted classes, case-insensitive extensions, recursion, hidden files ignored, symlinks followed', () => {
  const ds = new ImageFolder(join(dir, 'root', 'train'));
  assert.deepEqual(ds.classes, ['Mango', 'apple', 'zebra']); // code-point order, as Python's sorted()
  assert.deepEqual(
    ds.paths.map((p) => p.slice(join(dir, 'root', 'train').length + 1)),
    [
      'Mango/m.png',
      'apple/x.jpeg.png',
      'apple/sub/deep.png',
      'zebra/a.PNG',
      'zebra/b.png',
    ] /* torchvision's order: a folder's files before its sub-folders' */,
  );
  assert.deepEqual([...ds.labels!], [0, 1, 1, 2, 2]);
  assert.equal(ds.classToIdx.get('zebra'), 2);
  const val = new ImageFolder(join(dir, 'root', 'val'));
  assert.deepEqual(val.classes, ['apple', 'zebra']);
  assert.equal(val.length, 3);
  assert.throws(() => new ImageFolder(join(dir, 'flat', 'more')), /no class sub-folders/);
});

test('UnlabeledFolder and openDataset', () => {
  const u = new UnlabeledFolder(join(dir, 'flat'));
  assert.equal(u.length, 2);
  assert.equal(u.labels, null);
  assert.ok(openDataset(join(dir, 'root')) instanceof ImageFolder);
  assert.equal(openDataset(join(dir, 'root'), { split: 'test' }).length, 3);
  assert.ok(openDataset(join(dir, 'flat')) instanceof UnlabeledFolder);
  assert.ok(openDataset(`unlabeled:${join(dir, 'root', 'train')}`) instanceof UnlabeledFolder);
  const s = openDataset('synthetic:50');
  assert.equal(s.length, 50);
  assert.equal(openDataset('synthetic:50', { split: 'test' }).length, 10);
  assert.throws(() => openDataset(join(dir, 'nope')), /not found/);
  assert.throws(() => openDataset(`cifar10:${dir}`), /cifar-10-binary\.tar\.gz/);
});

test('Cifar reads the binary release (10 and 100)', () => {
  const bin10 = join(dir, 'c10', 'cifar-10-batches-bin');
  mkdirSync(bin10, { recursive: true });
  const rec = (label: number[], v: number): Buffer =>
    Buffer.concat([Buffer.from(label), Buffer.alloc(1024, v), Buffer.alloc(1024, v + 1), Buffer.alloc(1024, v + 2)]);
  for (let b = 1; b <= 5; b++)
    writeFileSync(join(bin10, `data_batch_${b}.bin`), Buffer.concat([rec([b], 10 * b), rec([9], 7)]));
  writeFileSync(join(bin10, 'test_batch.bin'), rec([3], 100));
  const tr = new Cifar(join(dir, 'c10'));
  assert.equal(tr.length, 10);
  assert.deepEqual([...tr.labels!], [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
  assert.deepEqual(tr.images.select(0, 2).flatten().slice(0, 0, 1).toArray(), [20]);
  assert.deepEqual(tr.images.select(0, 0).select(0, 2).flatten().slice(0, 0, 1).toArray(), [12]); // blue plane
  const te = new Cifar(join(dir, 'c10', 'cifar-10-batches-bin'), { train: false });
  assert.deepEqual([...te.labels!], [3]);
  assert.equal(te.classes![3], 'cat');
  const bin100 = join(dir, 'c100', 'cifar-100-binary');
  mkdirSync(bin100, { recursive: true });
  writeFileSync(join(bin100, 'test.bin'), Buffer.concat([rec([4, 77], 1), rec([5, 99], 2)]));
  const c100 = new Cifar(join(dir, 'c100'), { variant: 100, train: false });
  assert.deepEqual([...c100.labels!], [77, 99]);
  assert.throws(() => new Cifar(join(dir, 'c100'), { variant: 100 }), /cifar-100-binary\.tar\.gz/);
  [tr, te, c100].forEach((d) => d.dispose());
});

test('Synthetic: deterministic, balanced, fast; colours do not give the label away', () => {
  const t0 = performance.now();
  const a = new Synthetic({ n: 2000, seed: 3 });
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `2000 images took ${ms} ms`);
  const b = new Synthetic({ n: 20, seed: 3 });
  assert.deepEqual(b.images.data(), a.images.narrow(0, 0, 20).contiguous().data());
  assert.notDeepEqual(new Synthetic({ n: 20, seed: 4 }).images.data(), b.images.data());
  const counts = new Array(10).fill(0);
  for (const l of a.labels!) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(200));
  assert.deepEqual(a.classes, SYNTHETIC_CLASSES);
  // The shape's colour (the brightest pixel: shapes are lighter than their background) and the background's
  // (the darkest) have the same distribution in every class: per-class means within 12 of 255 of the overall.
  const px = a.images.permute(0, 2, 3, 1).contiguous().data() as Uint8Array; // N×H×W×3
  const S = 32;
  const pick = (i: number, brightest: boolean): number[] => {
    let best = -Infinity,
      at = 0;
    for (let p = 0; p < S * S; p++) {
      const o = (i * S * S + p) * 3;
      const v = (brightest ? 1 : -1) * (px[o]! + px[o + 1]! + px[o + 2]!);
      if (v > best) {
        best = v;
        at = o;
      }
    }
    return [px[at]!, px[at + 1]!, px[at + 2]!];
  };
  for (const brightest of [true, false]) {
    const cols = Array.from({ length: a.length }, (_, i) => pick(i, brightest));
    const all = [0, 1, 2].map((c) => cols.reduce((s, v) => s + v[c]!, 0) / a.length);
    for (let k = 0; k < 10; k++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = k; i < a.length; i += 10) s += cols[i]![c]!;
        assert.ok(
          Math.abs(s / 200 - all[c]!) < 12,
          `${brightest ? 'shape' : 'background'} colour, class ${k} channel ${c}: ${s / 200} vs ${all[c]}`,
        );
      }
    }
  }
  [a, b].forEach((d) => d.dispose());
});

test('subset and train/val split are seeded and disjoint', () => {
  const s = subsetIndices(100, 10, 1);
  assert.equal(new Set(s).size, 10);
  assert.deepEqual(subsetIndices(100, 10, 1), s);
  assert.notDeepEqual(subsetIndices(100, 10, 2), s);
  const sp = splitIndices(100, 0.2, 5);
  assert.equal(sp.val.length, 20);
  assert.equal(new Set([...sp.train, ...sp.val]).size, 100);
  const ds = new Synthetic({ n: 30 });
  const sub = subset(ds, 12, 0);
  assert.equal(sub.length, 12);
  const { train, val } = trainValSplit(ds, 6, 0);
  assert.deepEqual([train.length, val.length], [24, 6]);
  [ds, sub, train, val].forEach((d) => d.dispose());
});
