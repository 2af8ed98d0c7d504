// A collection records the weights that made its vectors: `moco index` with another encoder of the same
// dimension is refused naming both and --reembed (which re-embeds every file the collection holds), `moco search`
// with another encoder is refused, a copy of the same checkpoint is the same encoder, and a collection from
// before the digest was recorded keeps working (one warning, then the digest is recorded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Collection, indexImages } from '../../src/collections/index.js';
import { walkImages } from '../../src/data/walk.js';
import { loadEncoder } from '../../src/eval/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { CLI, cifarFolder, randomEncoder } from './fixtures.js';

const run = (args: string[]): { status: number | null; out: Record<string, unknown> | null; stderr: string } => {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, MOCO_NO_CACHE: '1' },
  });
  const last = r.stdout.trim().split('\n').pop();
  return {
    status: r.status,
    out: r.status === 0 && last ? (JSON.parse(last) as Record<string, unknown>) : null,
    stderr: r.stderr,
  };
};
const ok = (args: string[]): { out: Record<string, unknown>; stderr: string } => {
  const r = run(args);
  assert.equal(r.status, 0, r.stderr);
  return { out: r.out!, stderr: r.stderr };
};

test('moco index / search with another encoder of the same dim: refused naming both; --reembed re-embeds every file the collection holds', () => {
  const dir = tmpDir();
  try {
    const img = join(dir, 'img');
    const more = join(dir, 'more');
    cifarFolder(img, ['cat', 'dog'], 5);
    cifarFolder(more, ['ship'], 3);
    const a = randomEncoder(join(dir, 'a.safetensors'), 4);
    const b = randomEncoder(join(dir, 'b.safetensors'), 5);
    const db = join(dir, 'db');
    ok(['index', img, '--pretrained', a, '--db', db]);
    ok(['index', more, '--pretrained', a, '--db', db]);
    // The same weights under another name are the same encoder.
    const aCopy = join(dir, 'a-copy.safetensors');
    copyFileSync(a, aCopy);
    assert.equal(ok(['index', img, '--pretrained', aCopy, '--db', db]).out.unchanged, 10);

    const refused = run(['index', img, '--pretrained', b, '--db', db]);
    assert.equal(refused.status, 1);
    assert.match(
      refused.stderr,
      new RegExp(
        `--db ${db}: its vectors were made by the encoder ${resolve(a)} \\(weights sha256 [0-9a-f]{12}…\\), this one is ${resolve(b)} \\(weights sha256 [0-9a-f]{12}…\\)`,
      ),
    );
    assert.match(refused.stderr, /pass --reembed to drop them and embed every file it holds again/);

    const q = join(img, 'dog', '0001.jpg');
    const wrongQuery = run(['search', '--db', db, '--pretrained', b, '--query', q]);
    assert.equal(wrongQuery.status, 1);
    assert.match(
      wrongQuery.stderr,
      new RegExp(`made by the encoder ${resolve(a)} .*but the queries would be embedded with ${b} .*--reembed`),
    );
    assert.equal(
      ok(['search', '--db', db, '--pretrained', aCopy, '--query', q]).out.command,
      'search',
      'the same weights are accepted',
    );

    const re = ok(['index', img, '--pretrained', b, '--db', db, '--reembed']).out;
    assert.equal(re.added, 13, 'every file re-embedded, also those indexed from another folder');
    assert.equal(re.rows, 13);
    const hits = ok(['search', '--db', db, '--pretrained', b, '--query', q, '--top', '1']).out;
    const n = (hits.results as { neighbours: { path: string; score: number }[] }[])[0]!.neighbours[0]!;
    assert.equal(n.path, q);
    assert.ok(Math.abs(n.score - 1) < 1e-4, "the vectors are now b's");
    assert.equal(run(['search', '--db', db, '--query', q]).status, 0, 'the recorded encoder is b now');
    assert.equal(run(['search', '--db', db, '--pretrained', a, '--query', q]).status, 1);
    // The other settings that decide what a vector means are refused the same way, with the flag that fits.
    const flip = run(['index', img, '--pretrained', b, '--db', db, '--flip']);
    assert.match(flip.stderr, /made without --flip \(drop --flip\).*--reembed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a collection made before the encoder digest was recorded: index warns once and records it; search warns', async () => {
  const dir = tmpDir();
  try {
    const img = join(dir, 'img');
    cifarFolder(img, ['frog'], 4);
    const a = randomEncoder(join(dir, 'a.safetensors'), 4);
    const b = randomEncoder(join(dir, 'b.safetensors'), 5);
    const db = join(dir, 'db');
    // The metadata an older moco wrote: no encoderSha256.
    const enc = loadEncoder(a);
    try {
      const c = await Collection.open(db, { dim: enc.dim(), pretrained: resolve(a), feature: 'backbone' });
      try {
        await indexImages(enc, walkImages([img]).found, c);
      } finally {
        c.close();
      }
    } finally {
      enc.dispose();
    }
    const q = join(img, 'frog', '0000.jpg');
    const s = ok(['search', '--db', db, '--query', q]);
    assert.match(s.stderr, /does not record which weights made its vectors .*cannot be checked/);
    const first = ok(['index', img, '--pretrained', a, '--db', db]);
    assert.equal(first.out.unchanged, 4);
    assert.match(
      first.stderr,
      /warning: --db .* does not record which weights made its vectors .*recording its digest now/,
    );
    const second = ok(['index', img, '--pretrained', a, '--db', db]);
    assert.doesNotMatch(second.stderr, /warning/, 'once');
    assert.doesNotMatch(ok(['search', '--db', db, '--query', q]).stderr, /warning/);
    assert.equal(
      run(['index', img, '--pretrained', b, '--db', db]).status,
      1,
      'now recorded, another encoder is refused',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
