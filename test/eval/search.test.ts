// embed → search: an image's duplicate is found first; corrupt files are listed and skipped; the three file
// formats hold the same rows; chunked search equals a brute-force search.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import sharp from 'sharp';
import { manualSeed } from '../../src/torch/index.js';
import { createModel, projectionHead } from '../../src/models/index.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { loadEncoder } from '../../src/eval/encoder.js';
import { embedImages } from '../../src/eval/embed.js';
import { imagePaths } from '../../src/data/walk.js';
import { EmbeddingIndex, EmbeddingWriter } from '../../src/eval/embedding-file.js';
import { searchIndex } from '../../src/eval/search.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';

const CIFAR_TEST = '/work/shared/datasets/cifar10/test';

async function fixture(dir: string): Promise<string> {
  const img = join(dir, 'img');
  mkdirSync(join(img, 'sub'), { recursive: true });
  // Real photos when the shared CIFAR copy is there (copied to a temp dir, never into the repo), else patterns.
  for (let i = 0; i < 12; i++) {
    const out = join(img, i % 3 ? '' : 'sub', `${String(i).padStart(2, '0')}.${i % 2 ? 'jpg' : 'png'}`);
    if (existsSync(CIFAR_TEST)) {
      const cls = readdirSync(CIFAR_TEST).sort()[i % 10]!;
      const f = readdirSync(join(CIFAR_TEST, cls)).sort()[Math.floor(i / 10)]!;
      await sharp(join(CIFAR_TEST, cls, f)).toFile(out);
    } else {
      const px = new Uint8Array(32 * 32 * 3).map((_, j) => (j * (3 + i) + i * 41) % 256);
      await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).toFile(out);
    }
  }
  copyFileSync(join(img, '05.jpg'), join(img, 'zz-dup-of-05.jpg'));
  writeFileSync(join(img, 'broken.jpg'), 'not an image');
  writeFileSync(join(img, 'truncated.png'), readFileSync(join(img, '01.jpg')).subarray(0, 0));
  const trunc = readFileSync(join(img, '07.jpg'));
  writeFileSync(join(img, 'truncated.jpg'), trunc.subarray(0, Math.floor(trunc.length / 3)));
  manualSeed(4);
  const m = createModel('resnet18', { cifarStem: true, width: 8 });
  m.replaceModule('fc', projectionHead('mlp', m.featureDim, 16));
  saveSafetensors(join(dir, 'enc.safetensors'), new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t])));
  m.dispose();
  return img;
}

test("embed → search finds an image's duplicate first; corrupt files are reported and skipped; formats agree", async () => {
  const dir = tmpDir();
  try {
    const img = await fixture(dir);
    const enc = loadEncoder(join(dir, 'enc.safetensors'));
    const files = imagePaths([img]);
    assert.equal(files.length, 16);
    const skipped: string[] = [];
    const direct = await embedImages(enc, files, { batchSize: 5, onSkip: (s) => skipped.push(s.path) });
    assert.deepEqual(direct.skipped.map((s) => s.path).sort(), [
      join(img, 'broken.jpg'),
      join(img, 'truncated.jpg'),
      join(img, 'truncated.png'),
    ]);
    assert.deepEqual(skipped.sort(), direct.skipped.map((s) => s.path).sort());
    assert.equal(direct.paths.length, 13);
    assert.equal(direct.dim, 64);
    for (let i = 0; i < direct.paths.length; i++) {
      let n = 0;
      for (let j = 0; j < 64; j++) n += direct.vectors[i * 64 + j]! ** 2;
      assert.ok(Math.abs(n - 1) < 1e-5, 'rows are L2-normalised');
    }
    for (const ext of ['npy', 'safetensors', 'jsonl']) {
      const out = join(dir, `e.${ext}`);
      const w = new EmbeddingWriter(out, { pretrained: join(dir, 'enc.safetensors'), feature: 'backbone' });
      await embedImages(enc, files, { batchSize: 4, writer: w });
      w.finish();
      const index = EmbeddingIndex.open(out);
      assert.deepEqual([index.count, index.dim], [13, 64]);
      assert.deepEqual(index.paths, direct.paths);
      const all = index.read(0, 13);
      for (let i = 0; i < all.length; i++)
        assert.ok(Math.abs(all[i]! - direct.vectors[i]!) < 1e-6, `${ext} row value ${i}`);
      // Query = the original of the duplicate: itself and its duplicate first, score 1; small chunks exercise the merge.
      const qi = direct.paths.indexOf(join(img, '05.jpg'));
      const res = searchIndex(index, all.slice(qi * 64, (qi + 1) * 64), { top: 4, chunkBytes: 3 * 64 * 4 })[0]!;
      assert.deepEqual(
        res
          .slice(0, 2)
          .map((r) => r.path.split('/').pop())
          .sort(),
        ['05.jpg', 'zz-dup-of-05.jpg'],
      );
      assert.ok(res[0]!.score > 0.9999 && res[1]!.score > 0.9999);
      // Brute force over all queries.
      const got = searchIndex(index, all, { top: 3, chunkBytes: 5 * 64 * 4 });
      for (let q = 0; q < 13; q++) {
        const sims = Array.from({ length: 13 }, (_, r) => {
          let s = 0;
          for (let j = 0; j < 64; j++) s += all[q * 64 + j]! * all[r * 64 + j]!;
          return s;
        }).sort((a, b) => b - a);
        got[q]!.forEach((n, k) => assert.ok(Math.abs(n.score - sims[k]!) < 1e-5, `query ${q} rank ${k}`));
      }
      index.close();
    }
    enc.dispose();
    // The CLI: embed (libtorch engine) then search with a query outside the index; html written.
    const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
    const npy = join(dir, 'cli.npy');
    const emb = JSON.parse(
      execFileSync(process.execPath, [cli, 'embed', img, '--pretrained', join(dir, 'enc.safetensors'), '--out', npy], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
        .toString()
        .trim()
        .split('\n')
        .pop()!,
    ) as { count: number; skipped: unknown[] };
    assert.deepEqual([emb.count, emb.skipped.length], [13, 3]);
    copyFileSync(join(img, '05.jpg'), join(dir, 'query.jpg'));
    const out = execFileSync(
      process.execPath,
      [cli, 'search', '--index', npy, '--query', join(dir, 'query.jpg'), '--top', '3', '--html', join(dir, 's.html')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ).toString();
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      results: { neighbours: { path: string; score: number }[] }[];
    };
    assert.deepEqual(
      r.results[0]!.neighbours.slice(0, 2)
        .map((n) => n.path.split('/').pop())
        .sort(),
      ['05.jpg', 'zz-dup-of-05.jpg'],
    );
    const html = readFileSync(join(dir, 's.html'), 'utf8');
    assert.match(html, /img\/05\.jpg/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
