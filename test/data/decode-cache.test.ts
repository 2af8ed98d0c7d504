// The decoded-dataset cache: bounded by MOCO_CACHE_MAX with least-recently-used eviction, `moco cache ls|clear`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeAllCached } from '../../src/data/decode.js';
import { clearCache, listCache, parseBytes } from '../../src/data/decode-cache.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

async function folder(root: string, name: string, n: number, side: number): Promise<string[]> {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const px = Buffer.alloc(side * side * 3, (i * 37 + name.length * 11) % 256);
    const p = join(d, `${i}.png`);
    await sharp(px, { raw: { width: side, height: side, channels: 3 } })
      .png()
      .toFile(p);
    paths.push(p);
  }
  return paths;
}

test('the decode cache keeps at most MOCO_CACHE_MAX bytes, evicting the least recently used; cache ls and clear', async () => {
  const root = tmpDir();
  const dir = join(root, 'cache');
  const saved = { dir: process.env.MOCO_CACHE_DIR, max: process.env.MOCO_CACHE_MAX };
  process.env.MOCO_CACHE_DIR = dir;
  // Each set is 4 images × 3 × 32 × 32 = 12,288 bytes (+ header): room for two, not three.
  process.env.MOCO_CACHE_MAX = '30000';
  try {
    const a = await folder(root, 'a', 4, 32);
    const b = await folder(root, 'b', 4, 32);
    const c = await folder(root, 'c', 4, 32);
    const setA = await decodeAllCached(a);
    setA.images.dispose();
    const [fileA] = listCache(dir).map((e) => e.file);
    // Make A look old, then B is written: both fit.
    utimesSync(fileA!, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    (await decodeAllCached(b)).images.dispose();
    assert.equal(listCache(dir).length, 2);
    const fileB = listCache(dir)[0]!.file;
    utimesSync(fileB, new Date(Date.now() - 30_000), new Date(Date.now() - 30_000));
    // A hit on A makes it the most recent, so writing C evicts B, the least recently used.
    (await decodeAllCached(a)).images.dispose();
    (await decodeAllCached(c)).images.dispose();
    const left = listCache(dir).map((e) => e.file);
    assert.equal(left.length, 2);
    assert.ok(left.includes(fileA!), 'A (just used) stays');
    assert.ok(!existsSync(fileB), 'B (least recently used) was evicted');
    assert.ok(listCache(dir).reduce((s, e) => s + e.bytes, 0) <= 30000);

    const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
    const env = { ...process.env };
    const ls = JSON.parse(
      execFileSync(process.execPath, [cli, 'cache', 'ls', '--json'], { env, encoding: 'utf8' }),
    ) as { entries: unknown[]; maxBytes: number; dir: string };
    assert.equal(ls.entries.length, 2);
    assert.equal(ls.maxBytes, 30000);
    assert.equal(ls.dir, dir);
    assert.match(
      execFileSync(process.execPath, [cli, 'cache', 'clear'], { env, encoding: 'utf8' }),
      /freed 0\.0\d? MiB|freed [\d.]+ MiB/,
    );
    assert.equal(listCache(dir).length, 0);
    assert.equal(clearCache(dir), 0);
    // 0 keeps nothing.
    process.env.MOCO_CACHE_MAX = '0';
    (await decodeAllCached(a)).images.dispose();
    assert.equal(listCache(dir).length, 0);
  } finally {
    if (saved.dir === undefined) delete process.env.MOCO_CACHE_DIR;
    else process.env.MOCO_CACHE_DIR = saved.dir;
    if (saved.max === undefined) delete process.env.MOCO_CACHE_MAX;
    else process.env.MOCO_CACHE_MAX = saved.max;
    rmSync(root, { recursive: true, force: true });
  }
});

test('MOCO_CACHE_MAX sizes: units and a clear error', () => {
  assert.equal(parseBytes('8G', 'x'), 8 * 2 ** 30);
  assert.equal(parseBytes('500M', 'x'), 500 * 2 ** 20);
  assert.equal(parseBytes('1.5k', 'x'), 1536);
  assert.equal(parseBytes('123', 'x'), 123);
  assert.throws(
    () => parseBytes('lots', 'MOCO_CACHE_MAX'),
    /MOCO_CACHE_MAX 'lots': expected a size such as 8G, 500M or a number of bytes/,
  );
});

test('cache ls names the folder each cached dataset was decoded from; files written before that still list', async () => {
  const root = tmpDir();
  const dir = join(root, 'cache');
  const env = { ...process.env, MOCO_CACHE_DIR: dir, MOCO_CACHE_MAX: '8G' };
  const saved = process.env.MOCO_CACHE_DIR;
  process.env.MOCO_CACHE_DIR = dir;
  try {
    const paths = [
      ...(await folder(join(root, 'photos'), 'cats', 2, 16)),
      ...(await folder(join(root, 'photos'), 'dogs', 1, 16)),
    ];
    (await decodeAllCached(paths)).images.dispose();
    // A file in the layout of before: the same magic and header, without `source`.
    const header = Buffer.from(JSON.stringify({ n: 0, height: 16, width: 16, ok: [], skipped: [] }));
    const head = Buffer.alloc(8);
    head.writeUInt32LE(header.length, 0);
    head.writeUInt32LE(0x4f434f4d, 4);
    const old = join(dir, `decoded-${'0'.repeat(32)}.bin`);
    writeFileSync(old, Buffer.concat([head, header]));
    utimesSync(old, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));

    const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
    const text = execFileSync(process.execPath, [cli, 'cache', 'ls'], { env, encoding: 'utf8' }).trim().split('\n');
    assert.equal(text.length, 3, text.join('\n'));
    assert.ok(text[0]!.includes(`${join(root, 'photos')} (3 files)`), text[0]);
    assert.ok(text[1]!.includes('(source not recorded)') && text[1]!.includes(old), text[1]);
    const ls = JSON.parse(
      execFileSync(process.execPath, [cli, 'cache', 'ls', '--json'], { env, encoding: 'utf8' }),
    ) as { entries: { file: string; source: unknown }[] };
    assert.deepEqual(
      ls.entries.map((e) => e.source),
      [{ dir: join(root, 'photos'), files: 3 }, null],
    );
    // The recorded source changes nothing about reading the file back.
    const again = await decodeAllCached(paths);
    assert.deepEqual(again.images.shape, [3, 3, 16, 16]);
    again.images.dispose();
  } finally {
    if (saved === undefined) delete process.env.MOCO_CACHE_DIR;
    else process.env.MOCO_CACHE_DIR = saved;
    rmSync(root, { recursive: true, force: true });
  }
});
