// Pickle and zip bombs in a checkpoint are refused fast, naming the file: a 200 MiB pickle of MARK opcodes
// deflated into a small .pth (it drove `moco embed --pretrained` to 6 GB), the same opcodes stored, and DUP and
// MEMOIZE floods; a real state dict still loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { unpickle, PICKLE_LIMITS } from '../../src/io/pickle.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

const opts = {
  resolveGlobal: () => {
    throw new Error('no globals');
  },
};

test('unpickle refuses MARK, DUP and MEMOIZE floods past its limits, in well under a second', () => {
  const n = PICKLE_LIMITS.stackItems + 10;
  const floods: [string, Uint8Array][] = [
    ['MARK', Uint8Array.from([0x80, 2, ...new Array(PICKLE_LIMITS.markDepth + 10).fill(0x28)])],
    ['DUP', new Uint8Array([0x80, 2, 0x4e, ...new Array(n).fill(0x32)])],
    ['MEMOIZE', new Uint8Array([0x80, 4, 0x4e, ...new Array(n).fill(0x94)])],
  ];
  for (const [name, bytes] of floods) {
    const t0 = performance.now();
    assert.throws(() => unpickle(bytes, opts as never), /pickle refused .*a pickle bomb/, name);
    assert.ok(performance.now() - t0 < 1000, `${name}: ${performance.now() - t0} ms`);
  }
  // Nesting a checkpoint really has is fine.
  assert.deepEqual(
    unpickle(Uint8Array.from([0x80, 2, 0x28, 0x4b, 1, 0x4b, 2, 0x74, 0x2e]), opts as never).value,
    [1, 2],
  );
});

test('moco embed --pretrained on a zip bomb and a stored MARK flood refuses in seconds, naming the file', () => {
  const dir = tmpDir();
  try {
    mkdirSync(join(dir, 'img'));
    copyFileSync(
      join(repoRoot(), '..', 'shared', 'datasets', 'cifar10', 'test', 'cat', '0000.jpg'),
      join(dir, 'img', 'cat.jpg'),
    );
    const files: [string, Uint8Array, number][] = [
      ['deflated.pth', new Uint8Array(200 * 2 ** 20).fill(0x28), 9],
      ['stored.pth', new Uint8Array(2 * 2 ** 20).fill(0x28), 0],
    ];
    for (const [name, pkl, level] of files) {
      pkl[0] = 0x80;
      pkl[1] = 2;
      const zip = zipSync({
        'archive/data.pkl': [pkl, { level: level as 0 | 9 }],
        'archive/version': new TextEncoder().encode('3\n'),
      });
      writeFileSync(join(dir, name), zip);
      const t0 = Date.now();
      const r = spawnSync(
        process.execPath,
        [
          join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
          'embed',
          join(dir, 'img'),
          '--pretrained',
          join(dir, name),
          '--out',
          join(dir, 'x.npy'),
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      const s = (Date.now() - t0) / 1000;
      assert.notEqual(r.status, 0, `${name}: ${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`${name}.*(zip bomb|pickle bomb)|(zip bomb|pickle bomb).*${name}`, 's'),
        r.stderr,
      );
      assert.ok(s < 10, `${name}: refused after ${s} s (${zip.length} bytes on disk)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
