// `moco dedup --move-to` on a tree where one file is reached by several paths (a symlinked folder, a hard link,
// a symlinked file, overlapping inputs) moves only true duplicates: every original path opens the same bytes
// afterwards. A second run into the same folder keeps the first run's journal and never overwrites a moved file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpDir } from '../helpers/pytorch.js';
import { CIFAR_TEST, CLI, randomEncoder } from './fixtures.js';
import { moveDuplicates } from '../../src/collections/move.js';
import type { DupMember } from '../../src/collections/index.js';

const sha = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');

test('dedup --move-to: symlinked folder, hard link, symlinked file, overlapping inputs, a taken name: only true duplicates move', () => {
  const dir = tmpDir();
  try {
    const src = join(dir, 'src');
    mkdirSync(join(src, 'a'), { recursive: true });
    mkdirSync(join(src, 'b'));
    mkdirSync(join(src, 'd'));
    const names = readdirSync(join(CIFAR_TEST, 'cat')).sort().slice(0, 10);
    for (const f of names) copyFileSync(join(CIFAR_TEST, 'cat', f), join(src, 'a', f));
    symlinkSync('a', join(src, 'link'));
    linkSync(join(src, 'a', names[3]!), join(src, 'd', 'hard.jpg'));
    symlinkSync(join(src, 'a', names[4]!), join(src, 'd', 'soft.jpg'));
    // The one true duplicate: a byte copy of a/<names[1]>.
    copyFileSync(join(src, 'a', names[1]!), join(src, 'b', 'copy.jpg'));
    const before = new Map<string, string>();
    for (const p of [
      ...names.map((f) => join(src, 'a', f)),
      ...names.map((f) => join(src, 'link', f)),
      join(src, 'd', 'hard.jpg'),
      join(src, 'd', 'soft.jpg'),
    ])
      before.set(p, sha(p));
    const ckpt = randomEncoder(join(dir, 'enc.safetensors'));
    const dups = join(dir, 'dups');
    const run = (): { files: number; removable: number } =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [
            CLI,
            'dedup',
            src,
            join(src, 'a'),
            join(src, 'a', names[6]!),
            '--pretrained',
            ckpt,
            '--feature',
            'backbone',
            '--crops',
            'none',
            '--no-whiten',
            '--threshold',
            '0.99999',
            '--move-to',
            dups,
            '--out',
            join(dir, 'g.json'),
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MOCO_NO_CACHE: '1' } },
        )
          .trim()
          .split('\n')
          .pop()!,
      ) as { files: number; removable: number };
    const r1 = run();
    assert.equal(r1.files, 11, 'ten originals and the copy; the other paths are the same files');
    assert.equal(r1.removable, 1);
    for (const [p, h] of before) assert.equal(sha(p), h, `${p} still opens the same bytes`);
    assert.ok(!existsSync(join(src, 'b', 'copy.jpg')));
    // Run two: another copy under the same name; the first one's moved file and journal stay.
    copyFileSync(join(src, 'a', names[1]!), join(src, 'b', 'copy.jpg'));
    const r2 = run();
    assert.equal(r2.removable, 1);
    for (const [p, h] of before) assert.equal(sha(p), h, `${p} still opens the same bytes after run 2`);
    assert.ok(
      existsSync(join(dups, 'b', 'copy.jpg')) && existsSync(join(dups, 'b', 'copy (1).jpg')),
      readdirSync(join(dups, 'b')).join(', '),
    );
    const journal = readFileSync(join(dups, 'moved.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { run: string; state: string; from: string; to: string });
    assert.equal(journal.length, 4, 'two runs, each move journaled before and after');
    assert.equal(new Set(journal.map((e) => e.run)).size, 2);
    assert.deepEqual(
      journal.filter((e) => e.state === 'moved').map((e) => e.to),
      [join(dups, 'b', 'copy.jpg'), join(dups, 'b', 'copy (1).jpg')],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moveDuplicates: a duplicate that is the keeper under another path (an old collection, a link) is never moved', () => {
  const dir = tmpDir();
  try {
    mkdirSync(join(dir, 'a'));
    const keeper = join(dir, 'a', 'x.jpg');
    copyFileSync(join(CIFAR_TEST, 'cat', readdirSync(join(CIFAR_TEST, 'cat')).sort()[0]!), keeper);
    symlinkSync('a', join(dir, 'link'));
    linkSync(keeper, join(dir, 'hard.jpg'));
    const h = sha(keeper);
    const member = (path: string, score = 1): DupMember => ({
      id: 0,
      path,
      label: null,
      sha256: h,
      bytes: 1,
      mtime: 0,
      score,
    });
    const r = moveDuplicates(
      [
        {
          kind: 'exact',
          keeper: member(keeper),
          duplicates: [member(join(dir, 'link', 'x.jpg')), member(join(dir, 'hard.jpg'))],
          minScore: 1,
        },
      ],
      join(dir, 'dups'),
    );
    assert.deepEqual(r.moved, []);
    assert.equal(r.kept.length, 2);
    for (const k of r.kept) assert.match(k.reason, /same file as .*a\/x\.jpg, which is kept/);
    assert.equal(sha(keeper), h);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
