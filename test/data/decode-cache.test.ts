// The decoded-dataset cache: bounded by MOCO_CACHE_MAX with least-recently-used eviction, `moco cache ls|clear`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, utimesSync } from 'node:fs';
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
    await sharp(px, { raw: { width: side, height: side, channels: 3 } }).png().toFile(p);
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
    const ls = JSON.parse(execFileSync(process.execPath, [cli, 'cache', 'ls', '--json'], { env, encoding: 'utf8' })) as { entries: unknown[]; maxBytes: number; dir: string };
    assert.equal(ls.entries.length, 2);
    assert.equal(ls.maxBytes, 30000);
    assert.equal(ls.dir, dir);
    assert.match(execFileSync(process.execPath, [cli, 'cache', 'clear'], { env, encoding: 'utf8' }), /freed 0\.0\d? MiB|freed [\d.]+ MiB/);
    assert.equal(listCache(dir).length, 0);
    assert.equal(clearCache(dir), 0);
    // 0 keeps nothing.
    process.env.MOCO_CACHE_MAX = '0';
    (await decodeAllCached(a)).images.dispose();
    assert.equal(listCache(dir).length, 0);
  } finally {
    if (saved.dir === undefined) delete process.env.MOCO_CACHE_DIR; else process.env.MOCO_CACHE_DIR = saved.dir;
    if (saved.max === undefined) delete process.env.MOCO_CACHE_MAX; else process.env.MOCO_CACHE_MAX = saved.max;
    rmSync(root, { recursive: true, force: true });
  }
});

test('MOCO_CACHE_MAX sizes: units and a clear error', () => {
  assert.equal(parseBytes('8G', 'x'), 8 * 2 ** 30);
  assert.equal(parseBytes('500M', 'x'), 500 * 2 ** 20);
  assert.equal(parseBytes('1.5k', 'x'), 1536);
  assert.equal(parseBytes('123', 'x'), 123);
  assert.throws(() => parseBytes('lots', 'MOCO_CACHE_MAX'), /MOCO_CACHE_MAX 'lots': expected a size such as 8G, 500M or a number of bytes/);
});
