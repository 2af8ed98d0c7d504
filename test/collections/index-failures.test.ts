// `moco index` when things go wrong: a full disk mid-run ends in a moco error naming the collection, what was
// committed and that a rerun resumes (and the rerun does, with every committed row intact); a commit failure
// injected into the library says the same; relative `--db` paths that start with "db" are paths, not LanceDB
// Cloud URIs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { Collection, indexImages, lanceUri } from '../../src/collections/index.js';
import { walkImages } from '../../src/data/walk.js';
import { loadEncoder } from '../../src/eval/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { CLI, cifarFolder, randomEncoder } from './fixtures.js';

const env = { ...process.env, MOCO_NO_CACHE: '1' };
const moco = (args: string[], cwd?: string): Record<string, unknown> => {
  const out = execFileSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
    cwd,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
};

test('--db db and --db dbfoo (relative paths starting with "db") are local directories, not LanceDB Cloud URIs', () => {
  const dir = tmpDir();
  try {
    cifarFolder(join(dir, 'img'), ['cat', 'dog'], 3);
    randomEncoder(join(dir, 'enc.safetensors'));
    for (const db of ['db', 'dbfoo']) {
      const r = moco(['index', 'img', '--pretrained', 'enc.safetensors', '--db', db], dir);
      assert.equal(r.rows, 6, `--db ${db}`);
      const s = moco(['search', '--db', db, '--query', join('img', 'cat'), '--top', '2'], dir);
      assert.equal((s.results as unknown[]).length, 3, `search --db ${db}`);
    }
    assert.equal(lanceUri('db'), join(process.cwd(), 'db'));
    assert.equal(lanceUri('s3://bucket/x'), 's3://bucket/x');
    assert.equal(lanceUri('db://cloud-db'), 'db://cloud-db');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a commit that fails mid-run: an error naming the collection, the rows committed and the rerun; the rerun resumes', async () => {
  const dir = tmpDir();
  try {
    const img = join(dir, 'img');
    const total = cifarFolder(img, ['bird', 'deer'], 12);
    const enc = loadEncoder(randomEncoder(join(dir, 'enc.safetensors')));
    const db = join(dir, 'db');
    const files = walkImages([img]).found;
    try {
      const c = await Collection.open(db, { dim: enc.dim() });
      const append = c.append.bind(c);
      let calls = 0;
      // The failure LanceDB reports on a full disk, on the third commit.
      c.append = async (rows) => {
        if (++calls === 3)
          throw new Error(
            'lance error: LanceError(IO): Generic LocalFileSystem error: Unable to copy data to file: No space left on device (os error 28), /x/commit.rs:1519:50  Caused by: No space left on device (os error 28)',
          );
        return append(rows);
      };
      await assert.rejects(indexImages(enc, files, c, { chunk: 4, batchSize: 4 }), (e: Error) => {
        assert.match(
          e.message,
          new RegExp(
            `--db ${db}: writing to the collection failed \\(No space left on device \\(os error 28\\)\\) after this run had committed 8 of its ${total} files`,
          ),
        );
        assert.match(e.message, /rerun the same `moco index` command to resume/);
        assert.doesNotMatch(e.message, /commit\.rs|Caused by/);
        return true;
      });
      assert.equal(await c.count(), 8, 'the two chunks committed before the failure are in the table');
      c.close();
      const again = await Collection.open(db);
      try {
        const s = await indexImages(enc, files, again, { chunk: 4, batchSize: 4 });
        assert.equal(s.unchanged, 8);
        assert.equal(s.added, total - 8);
        assert.equal(new Set((await again.files()).map((r) => r.path)).size, total);
      } finally {
        again.close();
      }
    } finally {
      enc.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Mounts a tmpfs of `mb` MiB at `dir`; false where that is not allowed (not root, no mount). */
function mountTmpfs(dir: string, mb: number): boolean {
  mkdirSync(dir, { recursive: true });
  return spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { stdio: 'ignore' }).status === 0;
}

/** Writes `bytes` zero bytes to `file` (to take up most of a small file system). */
function fill(file: string, bytes: number): void {
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, Buffer.alloc(bytes));
  } finally {
    closeSync(fd);
  }
}

test('moco index onto a disk that fills up: a moco error (no raw LanceDB error), the committed rows intact, a rerun after freeing space resumes', async (t) => {
  const dir = tmpDir();
  const disk = join(dir, 'disk');
  if (!mountTmpfs(disk, 4)) {
    rmSync(dir, { recursive: true, force: true });
    t.skip('cannot mount a tmpfs here (needs root); the injected failure above covers the message');
    return;
  }
  try {
    const img = join(dir, 'img');
    const total = cifarFolder(img, ['cat', 'ship', 'truck', 'frog'], 30);
    const ckpt = randomEncoder(join(dir, 'enc.safetensors'));
    const db = join(disk, 'coll');
    // 120 KiB left: room for a few chunks' data files and versions, not for all 120 rows.
    fill(join(disk, 'filler'), (4096 - 120) * 1024);
    const args = ['index', img, '--pretrained', ckpt, '--db', db, '--chunk', '8', '--batch', '8', '--threads', '1'];
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
    assert.equal(r.status, 1, r.stderr);
    const m =
      /^moco: --db (\S+): writing to the collection failed \(No space left on device \(os error 28\)\) after this run had committed (\d+) of its (\d+) files; .*rerun the same `moco index` command to resume/m.exec(
        r.stderr,
      );
    assert.ok(m, r.stderr);
    assert.equal(m[1], db);
    assert.equal(Number(m[3]), total);
    const committed = Number(m[2]);
    assert.ok(committed < total, r.stderr);
    assert.doesNotMatch(r.stderr, /Caused by|\.rs:\d+|Uncaught|at async/);
    const c = await Collection.open(db);
    try {
      assert.equal(await c.count(), committed, 'the collection holds exactly the rows reported committed');
    } finally {
      c.close();
    }
    rmSync(join(disk, 'filler'));
    const again = moco(args);
    assert.equal(again.unchanged, committed);
    assert.equal(again.added, total - committed, 'the rerun embeds only the rest');
    assert.equal(again.rows, total);
    const c2 = await Collection.open(db);
    try {
      assert.equal(new Set((await c2.files()).map((x) => x.path)).size, total);
    } finally {
      c2.close();
    }
  } finally {
    spawnSync('umount', [disk], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  }
});
