// `moco pretrain` on a folder a user might really have: link cycles (two `..` links hung every folder walk), a
// dangling link, a truncated JPEG, a text file named .jpg and a non-image file. The run finishes, each image is
// used once, and every entry left out is named on stderr with its reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

const CIFAR_TEST = join(repoRoot(), '..', 'shared', 'datasets', 'cifar10', 'test');

test('moco pretrain on a folder with link cycles, a dangling link and odd files names each one left out', () => {
  const dir = tmpDir();
  try {
    const photos = join(dir, 'photos');
    mkdirSync(join(photos, 'trip'), { recursive: true });
    const cats = readdirSync(join(CIFAR_TEST, 'cat')).sort().slice(0, 16);
    cats.forEach((f, i) => copyFileSync(join(CIFAR_TEST, 'cat', f), join(photos, i % 2 ? 'trip' : '', f)));
    symlinkSync('..', join(photos, 'trip', 'up'));
    symlinkSync('..', join(photos, 'trip', 'up2'));
    symlinkSync('does_not_exist.jpg', join(photos, 'broken_link.jpg'));
    const jpeg = readFileSync(join(photos, cats[0]!));
    writeFileSync(join(photos, 'truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
    writeFileSync(join(photos, 'text.jpg'), 'not an image');
    writeFileSync(join(photos, 'notes.txt'), 'hello');
    const out = join(dir, 'run');
    const r = spawnSync(
      process.execPath,
      [
        join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
        'pretrain',
        photos,
        '--preset',
        'cifar',
        '--width',
        '8',
        '--image-size',
        '16',
        '--batch-size',
        '8',
        '--moco-k',
        '16',
        '--bn-splits',
        '1',
        '--max-steps',
        '1',
        '--threads',
        '1',
        '--out',
        out,
      ],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, MOCO_NO_CACHE: '1' } },
    );
    assert.equal(r.status, 0, r.stderr);
    const named = (name: string, why: RegExp): void => {
      const line = r.stderr.split('\n').find((l) => l.includes(name) && /skipping/.test(l));
      assert.ok(line && why.test(line), `${name} named with ${why}: ${line ?? r.stderr}`);
    };
    named('broken_link.jpg', /dangling symbolic link/);
    named(join('trip', 'up'), /already walked as .*link cycle/);
    named(join('trip', 'up2'), /already walked as .*link cycle/);
    named('truncated.jpg', /.+/);
    named('text.jpg', /.+/);
    named('notes.txt', /not an image file/);
    assert.equal(
      r.stderr.split('\n').filter((l) => /skipping/.test(l)).length,
      6,
      'nothing else left out, nothing named twice',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
