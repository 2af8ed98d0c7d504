// The one folder walk: link cycles end (one, two, three `..` links: every image once, the links named), a
// dangling link, a second path to the same file (symlink, hard link, overlapping inputs), a file name that is not
// UTF-8 and a non-image file are each named with the reason; labels follow ImageFolder's rule; deep trees do not
// grow the JS stack. ImageFolder / UnlabeledFolder report what they leave out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkImages } from '../../src/data/walk.js';
import { ImageFolder, SkipLog, UnlabeledFolder } from '../../src/data/index.js';
import { tmpDir } from '../helpers/pytorch.js';

const touch = (p: string): void => writeFileSync(p, 'x');

function tree(): string {
  const dir = tmpDir();
  mkdirSync(join(dir, 'root', 'cat', 'sub'), { recursive: true });
  mkdirSync(join(dir, 'root', 'dog'), { recursive: true });
  touch(join(dir, 'root', 'cat', '1.jpg'));
  touch(join(dir, 'root', 'cat', 'sub', '2.png'));
  touch(join(dir, 'root', 'dog', '3.JPEG'));
  return dir;
}

test('walkImages: every image once in sorted order with ImageFolder labels; cycles of one, two and three `..` links end', () => {
  for (const links of [0, 1, 2, 3]) {
    const dir = tree();
    try {
      const root = join(dir, 'root');
      // `..` links at several depths: each leads back to a folder already walked.
      const at = [join(root, 'cat', 'sub'), join(root, 'dog'), join(root, 'cat')];
      for (let i = 0; i < links; i++) symlinkSync('..', join(at[i]!, `up${i}`));
      const skipped: string[] = [];
      const r = walkImages([root], { onSkip: (s) => skipped.push(s.path) });
      assert.deepEqual(
        r.found.map((f) => f.path),
        [join(root, 'cat', '1.jpg'), join(root, 'cat', 'sub', '2.png'), join(root, 'dog', '3.JPEG')],
        `${links} links`,
      );
      assert.deepEqual(
        r.found.map((f) => f.label),
        ['cat', 'cat', 'dog'],
      );
      assert.equal(r.skipped.length, links, `each link named once: ${JSON.stringify(r.skipped)}`);
      assert.deepEqual(skipped.sort(), r.skipped.map((s) => s.path).sort());
      for (const s of r.skipped) assert.match(s.reason, /already walked as .*link cycle/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('walkImages: dangling link, hard link, symlinked file, overlapping inputs, non-UTF-8 name and non-image files are named', () => {
  const dir = tree();
  try {
    const root = join(dir, 'root');
    symlinkSync('does_not_exist.jpg', join(root, 'dog', 'broken_link.jpg'));
    symlinkSync('self.jpg', join(root, 'dog', 'self.jpg'));
    linkSync(join(root, 'cat', '1.jpg'), join(root, 'dog', 'hard.jpg'));
    symlinkSync(join(root, 'cat', '1.jpg'), join(root, 'dog', 'soft.jpg'));
    symlinkSync(join(root, 'cat'), join(root, 'kitty'));
    touch(join(root, 'dog', 'notes.txt'));
    touch(join(root, 'dog', '.DS_Store'));
    writeFileSync(
      Buffer.concat([Buffer.from(join(root, 'dog') + '/bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('.jpg')]),
      'x',
    );
    const r = walkImages([root, join(root, 'cat'), join(root, 'cat', '1.jpg')]);
    assert.deepEqual(
      r.found.map((f) => f.path),
      [join(root, 'cat', '1.jpg'), join(root, 'cat', 'sub', '2.png'), join(root, 'dog', '3.JPEG')],
    );
    const why = new Map(r.skipped.map((s) => [s.path.replace(root + '/', ''), s.reason]));
    assert.match(why.get('dog/broken_link.jpg')!, /dangling symbolic link \(to does_not_exist\.jpg\)/);
    assert.match(why.get('dog/self.jpg')!, /loops/);
    assert.match(why.get('dog/hard.jpg')!, /same file as .*cat\/1\.jpg/);
    assert.match(why.get('dog/soft.jpg')!, /same file as .*cat\/1\.jpg/);
    assert.match(why.get('kitty')!, /already walked as .*cat/);
    assert.match(why.get('dog/notes.txt')!, /not an image file/);
    assert.match(why.get('cat')!, /already walked/, 'an input inside an input is walked once');
    assert.match(why.get('cat/1.jpg')!, /same file/, 'a file inside an input folder is taken once');
    assert.ok(
      [...why].some(([p, w]) => p.startsWith('dog/bad-') && /not valid UTF-8/.test(w)),
      JSON.stringify([...why]),
    );
    assert.ok(![...why.keys()].some((p) => p.includes('.DS_Store')), 'hidden entries are not walked');
    assert.equal(r.skipped.length, 9);
    assert.throws(
      () => walkImages([join(root, 'dog', 'broken_link.jpg')]),
      /broken_link\.jpg: a dangling symbolic link/,
    );
    assert.throws(() => walkImages([join(root, 'nope')]), /nope: no such file or folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('walkImages: a tree 1500 folders deep is walked whole (no depth cut-off, no recursion on the JS stack)', () => {
  const dir = tmpDir();
  try {
    // 1500 levels of "a/" keep the path under PATH_MAX (4096).
    const deep = join(dir, 'd', ...Array.from({ length: 1500 }, () => 'a'));
    mkdirSync(deep, { recursive: true });
    touch(join(deep, 'deep.jpg'));
    const r = walkImages([join(dir, 'd')]);
    assert.deepEqual(r.found, [{ path: join(deep, 'deep.jpg'), label: 'a' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ImageFolder and UnlabeledFolder report the entries they leave out (a dangling link among them)', () => {
  const dir = tree();
  try {
    const root = join(dir, 'root');
    symlinkSync('does_not_exist.jpg', join(root, 'dog', 'broken_link.jpg'));
    touch(join(root, 'stray.jpg'));
    const lines: string[] = [];
    const log = new SkipLog((l) => lines.push(l));
    const f = new ImageFolder(root, { log });
    assert.deepEqual(f.classes, ['cat', 'dog']);
    assert.deepEqual(Array.from(f.labels!), [0, 0, 1]);
    assert.ok(
      lines.some((l) => /broken_link\.jpg: a dangling symbolic link/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /stray\.jpg: not inside a class folder/.test(l)),
      lines.join('\n'),
    );
    const ulines: string[] = [];
    const u = new UnlabeledFolder(root, { log: new SkipLog((l) => ulines.push(l)) });
    assert.equal(u.length, 4);
    assert.ok(ulines.some((l) => /broken_link\.jpg: a dangling symbolic link/.test(l)));
    mkdirSync(join(root, 'empty'));
    assert.throws(() => new ImageFolder(root, { log }), /class folder .*empty has no images/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
