// The search service labels rows by the folder walk's rule (the first folder below the folder embedded), the
// same label `moco index` stores and ImageFolder trains on, however deep the file sits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { walkImages, labelUnder } from '../../src/data/walk.js';
import { EmbeddingWriter } from '../../src/eval/embedding-file.js';
import { ExactIndexBackend } from '../../src/serve/search-backend.js';
import { tmpDir } from '../helpers/pytorch.js';

/** A folder with classes nested at several depths and one file directly in it. */
function tree(): { dir: string; root: string } {
  const dir = tmpDir('moco-labels-');
  const root = join(dir, 'photos');
  for (const f of ['cat/a.png', 'cat/2019/summer/b.png', 'dog/c.png', 'dog/d/e.png', 'loose.png']) {
    mkdirSync(join(root, f, '..'), { recursive: true });
    writeFileSync(join(root, f), 'not decoded here');
  }
  return { dir, root };
}

/** Every row's label as a search over all rows returns it. */
async function labelsOf(file: string): Promise<Map<string, string | null>> {
  const b = ExactIndexBackend.open(file);
  try {
    const q = new Float32Array(b.dim).fill(1);
    const hits = (await b.search(q, b.size))[0]!;
    return new Map(hits.map((h) => [h.path, h.label]));
  } finally {
    await b.close();
  }
}

test('labelUnder: first folder below the deepest root; null directly in a root or outside every root', () => {
  assert.equal(labelUnder(['/p'], '/p/cat/2019/x.png'), 'cat');
  assert.equal(labelUnder(['/p'], '/p/x.png'), null);
  assert.equal(labelUnder(['/p'], '/q/cat/x.png'), null);
  assert.equal(labelUnder(['/p', '/p/cat'], '/p/cat/2019/x.png'), '2019');
  assert.equal(labelUnder(['/p'], '/pp/cat/x.png'), null, 'a sibling that shares a prefix is not below the root');
});

test('search labels are the walk labels, with the walked roots recorded and for a file without them', async () => {
  const { dir, root } = tree();
  try {
    const walked = walkImages([root]);
    const want = new Map(walked.found.map((f) => [f.path, f.label]));
    assert.equal(want.get(join(root, 'cat/2019/summer/b.png')), 'cat');
    const rows = new Float32Array(walked.found.length * 4).map((_, i) => 1 + (i % 4));
    for (const meta of [{ roots: walked.roots }, {}]) {
      const file = join(dir, `emb-${Object.keys(meta).length}.npy`);
      const w = new EmbeddingWriter(file, meta);
      w.add(
        rows,
        walked.found.map((f) => f.path),
      );
      w.finish();
      assert.deepEqual(await labelsOf(file), want, JSON.stringify(meta));
    }
    // Only one class folder embedded: the class is still its label when the walked root is recorded.
    const one = walkImages([root]).found.filter((f) => f.label === 'dog');
    const file = join(dir, 'dogs.npy');
    const w = new EmbeddingWriter(file, { roots: [root] });
    w.add(
      new Float32Array(one.length * 4).fill(1),
      one.map((f) => f.path),
    );
    w.finish();
    assert.deepEqual([...(await labelsOf(file)).values()], ['dog', 'dog']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
