// Odd and broken files: each decodes to RGB uint8 or is reported once and skipped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { SkipLog, decodeAll, decodeAllCached, decodeImage, decodeStack, imageSize } from '../../src/data/decode.js';
import { Augmentation, jpegHeader, preset } from '../../src/data/augment.js';
import { Rng } from '../../src/data/rng.js';
import { ImageFolder } from '../../src/data/datasets/folder.js';
import { Loader } from '../../src/data/loader.js';
import { FileImages, TensorImages, rowsOf } from '../../src/data/decoded-images.js';
import { tmpDir } from '../helpers/pytorch.js';

let dir: string;
const raw = (w: number, h: number, c: 1 | 3 | 4, fill: (i: number) => number): Buffer =>
  Buffer.from(Uint8Array.from({ length: w * h * c }, (_, i) => fill(i)));

before(async () => {
  dir = tmpDir('moco-decode-');
  const odd = join(dir, 'odd', 'a');
  mkdirSync(odd, { recursive: true });
  const rgb = raw(20, 12, 3, (i) => (i * 7) % 256);
  const jpeg = await sharp(rgb, { raw: { width: 20, height: 12, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
  writeFileSync(join(odd, 'ok.jpg'), jpeg);
  writeFileSync(join(odd, 'truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  writeFileSync(join(odd, 'text.jpg'), 'this is not an image\n');
  await sharp(
    raw(20, 12, 4, (i) => (i % 4 === 3 ? 0 : 200)),
    { raw: { width: 20, height: 12, channels: 4 } },
  )
    .png()
    .toFile(join(odd, 'alpha.png'));
  await sharp(
    raw(1, 1, 3, (i) => [10, 20, 30][i]!),
    { raw: { width: 1, height: 1, channels: 3 } },
  )
    .png()
    .toFile(join(odd, 'one.png'));
  await sharp(
    raw(20, 12, 1, () => 90),
    { raw: { width: 20, height: 12, channels: 1 } },
  )
    .toColourspace('b-w')
    .jpeg()
    .toFile(join(odd, 'gray.jpg'));
  await sharp(
    raw(20, 12, 3, () => 120),
    { raw: { width: 20, height: 12, channels: 3 } },
  )
    .toColourspace('cmyk')
    .jpeg()
    .toFile(join(odd, 'cmyk.jpg'));
  await sharp(
    raw(20, 12, 3, () => 240),
    { raw: { width: 20, height: 12, channels: 3 } },
  )
    .toColourspace('rgb16')
    .png()
    .toFile(join(odd, 'deep.png'));
  // EXIF orientation 6 (rotate 90° clockwise to display): 20×12 stored, 12×20 shown.
  await sharp(rgb, { raw: { width: 20, height: 12, channels: 3 } })
    .withMetadata({ orientation: 6 })
    .jpeg()
    .toFile(join(odd, 'rotated.JPG'));
  // Same-size images plus broken ones: small enough to be decoded into memory.
  const same = join(dir, 'same', 'a');
  mkdirSync(same, { recursive: true });
  for (const f of ['ok.jpg', 'truncated.jpg', 'text.jpg', 'alpha.png', 'gray.jpg', 'cmyk.jpg', 'deep.png'])
    writeFileSync(join(same, f), readFileSync(join(odd, f)));
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('odd modes decode to RGB uint8', async () => {
  const d = join(dir, 'odd', 'a');
  const alpha = await decodeImage(join(d, 'alpha.png'));
  assert.deepEqual([alpha.width, alpha.height, alpha.data.length], [20, 12, 20 * 12 * 3]);
  assert.equal(alpha.data[0], 200); // alpha dropped as PIL convert('RGB'), not composited
  const one = await decodeImage(join(d, 'one.png'));
  assert.deepEqual([...one.data], [10, 20, 30]);
  const gray = await decodeImage(join(d, 'gray.jpg'));
  assert.equal(gray.data.length, 20 * 12 * 3);
  assert.ok(Math.abs(gray.data[0]! - 90) <= 2 && gray.data[0] === gray.data[1] && gray.data[1] === gray.data[2]);
  const cmyk = await decodeImage(join(d, 'cmyk.jpg'));
  assert.equal(cmyk.data.length, 20 * 12 * 3);
  const deep = await decodeImage(join(d, 'deep.png'));
  assert.ok(Math.abs(deep.data[0]! - 240) <= 1, `16-bit → 8-bit: ${deep.data[0]}`);
  const rot = await decodeImage(join(d, 'rotated.JPG'));
  assert.deepEqual([rot.width, rot.height], [12, 20]);
  assert.deepEqual(await imageSize(join(d, 'rotated.JPG')), { width: 12, height: 20 });
  const cropped = await decodeImage(join(d, 'ok.jpg'), {
    crop: { left: 2, top: 1, width: 10, height: 8 },
    resize: { width: 5, height: 4 },
    flip: true,
  });
  assert.deepEqual([cropped.width, cropped.height], [5, 4]);
  await assert.rejects(decodeImage(join(d, 'truncated.jpg')));
  await assert.rejects(decodeImage(join(d, 'text.jpg')));
});

test('decodeAll skips and reports each broken file once; all-broken is an error', async () => {
  const d = join(dir, 'odd', 'a');
  const files = readdirSync(d)
    .sort()
    .map((f) => join(d, f));
  const lines: string[] = [];
  const log = new SkipLog((l) => lines.push(l));
  const set = await decodeAll(files, { size: [12, 20], log });
  assert.deepEqual(
    set.skipped.map((s) => s.path.split('/').pop()),
    ['text.jpg', 'truncated.jpg'],
  );
  assert.equal(set.images.shape[0], files.length - 2);
  assert.deepEqual(set.images.shape.slice(1), [3, 12, 20]);
  assert.equal(lines.length, 2);
  assert.match(lines.join('\n'), /truncated\.jpg: .+/);
  log.report(
    files.find((f) => f.endsWith('text.jpg'))!,
    'again',
  );
  assert.equal(lines.length, 2, 'reported once');
  set.images.dispose();
  await assert.rejects(decodeAll([join(d, 'text.jpg'), join(d, 'truncated.jpg')], { log }), /no readable image/);
});

test('the decoded-dataset cache is keyed by path+mtime and returns the same tensor', async () => {
  const prev = process.env.MOCO_CACHE_DIR;
  process.env.MOCO_CACHE_DIR = join(dir, 'cache');
  try {
    const d = join(dir, 'odd', 'a');
    const files = ['ok.jpg', 'alpha.png', 'deep.png'].map((f) => join(d, f));
    const a = await decodeAllCached(files, { size: [12, 20] });
    assert.equal(readdirSync(join(dir, 'cache')).length, 1);
    const b = await decodeAllCached(files, { size: [12, 20] });
    const all = rowsOf(files.length);
    assert.deepEqual(b.images.takeBytes(all), a.images.takeBytes(all));
    // Rows come from the cache file as the uncached decode has them, in any order.
    const mem = await decodeAllCached(files, { size: [12, 20], cache: false });
    assert.ok(b.images instanceof FileImages && mem.images instanceof TensorImages);
    assert.deepEqual(b.images.takeBytes([2, 0, 2]), mem.images.takeBytes([2, 0, 2]));
    assert.throws(() => b.images.take([3]), /row 3 out of range for 3 images/);
    const c = await decodeAllCached(files.slice(0, 2), { size: [12, 20] });
    assert.equal(readdirSync(join(dir, 'cache')).length, 2);
    [a, b, c, mem].forEach((s) => s.images.dispose());
  } finally {
    if (prev === undefined) delete process.env.MOCO_CACHE_DIR;
    else process.env.MOCO_CACHE_DIR = prev;
  }
});

test('a folder with corrupt files trains: batches come out, skipped files are listed', async () => {
  const lines: string[] = [];
  const log = new SkipLog((l) => lines.push(l));
  // Files kept on disk (memoryBudget 0): broken files are found while building batches and replaced.
  const ds = new ImageFolder(join(dir, 'odd'));
  const loader = new Loader(ds, {
    batchSize: 4,
    shuffle: true,
    augment: 'lincls-train',
    augmentOpts: { size: 16 },
    twoCrops: true,
    prepare: { memoryBudget: 0, log },
  });
  let n = 0;
  for await (const b of loader.epoch(0)) {
    assert.deepEqual(b.views[0]!.shape.slice(1), [3, 16, 16]);
    assert.ok(b.views.every((v) => v.isfinite().all().item() === 1));
    n += b.indices.length;
    b.dispose();
  }
  assert.equal(n, ds.length);
  // In memory (default budget): broken files are dropped at decode time.
  const mem = new ImageFolder(join(dir, 'same'));
  const l2 = new Loader(mem, {
    batchSize: 3,
    augment: 'cifar',
    augmentOpts: { size: 8 },
    prepare: { log, cache: false },
  });
  assert.equal((await l2.prepare()).kind, 'decoded');
  assert.equal(mem.length, 5);
  assert.equal(l2.batchesPerEpoch, 2);
  for await (const b of l2.epoch(0)) b.dispose();
  assert.ok(
    log.list.some((s) => s.path.endsWith('truncated.jpg')) && log.list.some((s) => s.path.endsWith('text.jpg')),
  );
  mem.dispose();
});

test("unreadable: 'blank' marks the gray rows' positions in the batch, in-thread and in a worker", async () => {
  const ds = new ImageFolder(join(dir, 'odd'));
  const expectGray = ds.paths.flatMap((p, i) => (/truncated\.jpg$|text\.jpg$/.test(p) ? [i] : []));
  for (const fileWorkers of [0, 1]) {
    const log = new SkipLog(() => undefined);
    const loader = new Loader(ds, {
      batchSize: 4,
      shuffle: false,
      augment: 'cifar-eval',
      augmentOpts: { size: 8 },
      unreadable: 'blank',
      fileWorkers,
      prepare: { memoryBudget: 0, log },
    });
    const gray: number[] = [];
    let at = 0;
    for await (const b of loader.epoch(0)) {
      for (const i of b.unreadable) gray.push(at + i);
      at += b.indices.length;
      b.dispose();
    }
    await loader.close();
    assert.deepEqual(gray, expectGray, `fileWorkers ${fileWorkers}`);
    assert.deepEqual(
      expectGray.map((i) => typeof log.reasonOf(ds.paths[i]!)),
      ['string', 'string'],
    );
    assert.equal(log.reasonOf(ds.paths.find((p) => p.endsWith('ok.jpg'))!), undefined);
  }
});

test('JPEG frame headers parsed in JS agree with sharp; joined decodes equal one call per image', async () => {
  const odd = join(dir, 'odd', 'a');
  for (const f of readdirSync(odd)) {
    const b = readFileSync(join(odd, f));
    const h = jpegHeader(b);
    if (f === 'rotated.JPG' || !f.endsWith('.jpg') || f === 'text.jpg') {
      assert.equal(h, null, f);
      continue;
    }
    if (f === 'truncated.jpg') continue; // header intact, pixels cut: sharp's decode is what fails
    assert.deepEqual({ width: h!.width, height: h!.height }, await imageSize(b), f);
    assert.equal(h!.components, f === 'gray.jpg' ? 1 : f === 'cmyk.jpg' ? 4 : 3, f);
  }
  const cut = readFileSync(join(odd, 'ok.jpg'));
  assert.equal(jpegHeader(cut.subarray(0, 30)), null); // ends before the first scan
  const parts = await Promise.all(
    [0, 1, 2].map((k) =>
      sharp(
        raw(8, 8, 3, (i) => (i * (k + 3)) % 256),
        { raw: { width: 8, height: 8, channels: 3 } },
      )
        .jpeg()
        .toBuffer(),
    ),
  );
  const stacked = await decodeStack(parts);
  assert.deepEqual([stacked.width, stacked.height], [8, 24]);
  for (let k = 0; k < 3; k++)
    assert.deepEqual(stacked.data.subarray(k * 192, (k + 1) * 192), (await decodeImage(parts[k]!)).data);
  await assert.rejects(decodeStack([parts[0]!, cut.subarray(0, cut.length >> 1)]));
});

test('whole-image views of S×S JPEGs (decoded joined) equal the per-image path, a broken one among them gray', async () => {
  const d = join(dir, 'small');
  mkdirSync(d, { recursive: true });
  const files: string[] = [];
  for (let k = 0; k < 40; k++) {
    const f = join(d, `${String(k).padStart(2, '0')}.jpg`);
    const b = await sharp(
      raw(8, 8, 3, (i) => (i * (k + 1) * 5) % 256),
      { raw: { width: 8, height: 8, channels: 3 } },
    )
      .jpeg({ quality: 90 })
      .toBuffer();
    writeFileSync(f, k === 5 || k === 30 ? b.subarray(0, b.length >> 1) : b);
    files.push(f);
  }
  const idx = Int32Array.from(files.keys());
  const spec = preset('cifar-eval', { size: 8 });
  const run = async (s: typeof spec): Promise<{ x: Float32Array; blank: number[] }> => {
    const r = await new Augmentation(s).fromFiles((i) => files[i]!, idx, new Rng(0, 't'), 1, {
      blank: true,
      log: new SkipLog(() => undefined),
    });
    const x = r.views[0]!.data() as Float32Array;
    r.views[0]!.dispose();
    return { x, blank: [...r.blank] };
  };
  const joined = await run(spec);
  const each = await run({ ...spec, resize: 8 }); // resize+center crop of an 8×8 image: the general, per-image path
  assert.deepEqual(joined.blank, [5, 30]);
  assert.deepEqual(each.blank, [5, 30]);
  assert.deepEqual(joined.x, each.x);
});
