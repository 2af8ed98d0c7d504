// moco serve's routes through fastify.inject: readiness while loading, info, embeddings equal to the library's
// (`moco embed`'s code path) for the same files, multipart batches, search by image and by vector with a label
// filter, thumbnails, the OpenAPI document, and an exported .onnx model served the same way.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/serve/index.js';
import { embedImages } from '../../src/eval/embed.js';
import { loadEncoder } from '../../src/eval/encoder.js';
import { exportResNetOnnx } from '../../src/models/resnet-onnx.js';
import { embedFilesOnnx } from '../../src/eval/onnx-embed.js';
import { loadPretrained } from '../../src/io/pretrained.js';
import { dispose } from '../../src/torch/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { buildIndex, labelledImages, patternImage, tinyCheckpoint } from './fixtures.js';

let dir = '';
let ckpt = '';
let files: string[] = [];
let app: FastifyInstance;

before(async () => {
  dir = tmpDir('moco-serve-');
  ckpt = tinyCheckpoint(dir);
  files = await labelledImages(dir, ['cat', 'dog', 'fish'], 4);
  const index = await buildIndex(ckpt, files, join(dir, 'emb.npy'));
  app = buildServer({ pretrained: ckpt, index });
});
after(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

function multipart(parts: { name: string; filename: string; type: string; data: Buffer }[]): {
  body: Buffer;
  type: string;
} {
  const boundary = '----moco-test-boundary';
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"\r\nContent-Type: ${p.type}\r\n\r\n`,
      ),
      p.data,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('readiness: 503 while loading, then ready; health always answers', async () => {
  const r0 = await app.inject('/readyz');
  assert.equal(r0.statusCode, 503, 'not ready before the model is loaded');
  assert.ok(r0.headers['retry-after']);
  assert.equal((await app.inject('/healthz')).statusCode, 200);
  const early = await app.inject({
    method: 'POST',
    url: '/v1/embed',
    headers: { 'content-type': 'image/png' },
    payload: readFileSync(files[0]!),
  });
  assert.equal(early.statusCode, 503, 'embedding while loading is refused, not queued forever');
  await app.moco.loaded;
  const r1 = await app.inject('/readyz');
  assert.equal(r1.statusCode, 200);
  assert.deepEqual(r1.json(), { status: 'ready' });
});

test('/v1/info reports the model, dim, preprocessing and index size', async () => {
  await app.moco.loaded;
  const info = (await app.inject('/v1/info')).json() as Record<string, any>;
  assert.equal(info.dim, 64);
  assert.equal(info.model.kind, 'checkpoint');
  assert.match(info.model.arch, /resnet18 \(CIFAR stem\)/);
  assert.deepEqual(info.preprocessing, {
    size: 32,
    resize: null,
    mean: [0.4914, 0.4822, 0.4465],
    std: [0.2023, 0.1994, 0.201],
    preset: 'cifar-eval',
  });
  assert.deepEqual(info.index, { kind: 'exact', source: 'emb.npy', size: files.length, dim: 64 });
});

test('/v1/embed equals the library embedding (moco embed) of the same files: raw body and multipart', async () => {
  await app.moco.loaded;
  const enc = loadEncoder(ckpt);
  const ref = await embedImages(enc, [files[0]!, files[5]!, files[9]!]);
  enc.dispose();
  const raw = await app.inject({
    method: 'POST',
    url: '/v1/embed',
    headers: { 'content-type': 'image/png' },
    payload: readFileSync(files[0]!),
  });
  assert.equal(raw.statusCode, 200, raw.body);
  const rj = raw.json() as { dim: number; vectors: number[][] };
  assert.equal(rj.dim, 64);
  assert.equal(rj.vectors.length, 1);
  const d0 = maxAbsDiff(rj.vectors[0]!, ref.vectors.subarray(0, 64));
  assert.ok(d0 <= 1e-4, `raw body: max abs diff ${d0} to embedImages`);
  const mp = multipart(
    [files[0]!, files[5]!, files[9]!].map((f, i) => ({
      name: 'image',
      filename: `f${i}.png`,
      type: 'image/png',
      data: readFileSync(f),
    })),
  );
  const r = await app.inject({
    method: 'POST',
    url: '/v1/embed',
    headers: { 'content-type': mp.type },
    payload: mp.body,
  });
  assert.equal(r.statusCode, 200, r.body);
  const j = r.json() as { names: string[]; vectors: number[][] };
  assert.deepEqual(j.names, ['f0.png', 'f1.png', 'f2.png']);
  const d = maxAbsDiff(j.vectors.flat(), ref.vectors);
  assert.ok(d <= 1e-4, `multipart: max abs diff ${d} to embedImages`);
  // The three images differ, so equal vectors would mean the model ignored its input.
  assert.ok(maxAbsDiff(j.vectors[0]!, j.vectors[1]!) > 1e-3);
});

test('/v1/search: by image, by vector, with a label filter; thumbnails of the hits', async () => {
  await app.moco.loaded;
  const img = await app.inject({
    method: 'POST',
    url: '/v1/search?top=3',
    headers: { 'content-type': 'image/png' },
    payload: readFileSync(files[6]!),
  });
  assert.equal(img.statusCode, 200, img.body);
  const hits = (
    img.json() as {
      results: { neighbours: { row: number; path: string; label: string; score: number; thumbnail: string }[] }[];
    }
  ).results[0]!.neighbours;
  assert.equal(hits.length, 3);
  assert.equal(
    hits[0]!.path,
    'dog/2.png',
    'an indexed image finds itself first (its path relative to the indexed folder)',
  );
  assert.ok(Math.abs(hits[0]!.score - 1) < 1e-4);
  assert.equal(hits[0]!.label, 'dog');
  assert.ok(hits[0]!.score >= hits[1]!.score && hits[1]!.score >= hits[2]!.score);

  // A vector: row 2's own embedding, filtered to another label, never returns row 2 and only that label.
  const emb = (
    await app.inject({
      method: 'POST',
      url: '/v1/embed',
      headers: { 'content-type': 'image/png' },
      payload: readFileSync(files[2]!),
    })
  ).json() as { vectors: number[][] };
  const all = await app.inject({ method: 'POST', url: '/v1/search', payload: { vector: emb.vectors[0], top: 1 } });
  assert.equal((all.json() as any).results[0].neighbours[0].row, 2);
  const f = await app.inject({
    method: 'POST',
    url: '/v1/search',
    payload: { vector: emb.vectors[0], top: 10, filter: { label: ['fish', 'dog'] } },
  });
  assert.equal(f.statusCode, 200, f.body);
  const fh = (f.json() as any).results[0].neighbours as { row: number; label: string }[];
  assert.equal(fh.length, 8);
  assert.ok(fh.every((h) => h.label === 'fish' || h.label === 'dog'));
  const q = await app.inject({
    method: 'POST',
    url: '/v1/search?top=20&label=cat',
    headers: { 'content-type': 'image/png' },
    payload: readFileSync(files[6]!),
  });
  assert.deepEqual(
    (q.json() as any).results[0].neighbours.map((h: { label: string }) => h.label),
    ['cat', 'cat', 'cat', 'cat'],
  );
  // A filter field the API does not know is refused, not ignored.
  const bad = await app.inject({
    method: 'POST',
    url: '/v1/search',
    payload: { vector: emb.vectors[0], filter: { label: 'x', sql: '1=1' } },
  });
  assert.equal(bad.statusCode, 400);

  const t = await app.inject(hits[1]!.thumbnail);
  assert.equal(t.statusCode, 200);
  assert.equal(t.headers['content-type'], 'image/jpeg');
  assert.equal(t.rawPayload.subarray(0, 2).toString('hex'), 'ffd8');
  assert.equal((await app.inject('/v1/thumbnail/999')).statusCode, 404);
});

test('OpenAPI document lists the routes with their schemas; unknown routes are 404', async () => {
  const r = await app.inject('/openapi.json');
  assert.equal(r.statusCode, 200);
  const doc = r.json() as {
    openapi: string;
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, unknown> } }>>;
  };
  assert.match(doc.openapi, /^3\./);
  for (const p of ['/v1/embed', '/v1/search', '/v1/info', '/healthz', '/readyz'])
    assert.ok(doc.paths[p], `${p} in the OpenAPI document`);
  assert.ok(doc.paths['/v1/search']!.post!.requestBody!.content['application/json'], 'search documents its JSON body');
  for (const p of ['/v1/embed', '/v1/search']) {
    for (const t of ['image/*', 'multipart/form-data'])
      assert.ok(doc.paths[p]!.post!.requestBody!.content[t], `${p} documents ${t}`);
  }
  const nf = await app.inject('/v2/nothing');
  assert.equal(nf.statusCode, 404);
  assert.match((nf.json() as { message: string }).message, /no route GET \/v2\/nothing/);
});

test('an exported .onnx model serves the same embeddings as moco embed --engine onnx (ImageNet stem, resize+crop)', async () => {
  const ck = tinyCheckpoint(dir, { cifar: false, seed: 9 });
  const w = loadPretrained(ck);
  const onnx = join(dir, 'tiny.onnx');
  exportResNetOnnx(onnx, w.backbone, { normalize: true });
  dispose([w.backbone, w.head]);
  const img = join(dir, 'wide.jpg');
  await (
    await import('sharp')
  )
    .default(await patternImage(3, { width: 300, height: 200, kind: 1, format: 'jpeg' }))
    .toFile(img);
  const ref = await embedFilesOnnx(onnx, [img], { isolate: true });
  const s = buildServer({ pretrained: onnx });
  try {
    await s.moco.loaded;
    const info = (await s.inject('/v1/info')).json() as {
      preprocessing: { size: number; resize: number };
      model: { kind: string };
    };
    assert.equal(info.model.kind, 'onnx');
    assert.equal(info.preprocessing.size, 224);
    assert.equal(info.preprocessing.resize, 256);
    const r = await s.inject({
      method: 'POST',
      url: '/v1/embed',
      headers: { 'content-type': 'image/jpeg' },
      payload: readFileSync(img),
    });
    assert.equal(r.statusCode, 200, r.body);
    const d = maxAbsDiff((r.json() as { vectors: number[][] }).vectors[0]!, ref.data);
    assert.ok(d <= 1e-5, `max abs diff ${d} to embedFilesOnnx`);
    // The browser page fetches the very same model bytes.
    const m = await s.inject('/model.onnx');
    assert.deepEqual(m.rawPayload, readFileSync(onnx));
    // No --index: search says how to get one.
    const ns = await s.inject({ method: 'POST', url: '/v1/search', payload: { vector: Array(64).fill(0) } });
    assert.equal(ns.statusCode, 404);
    assert.match((ns.json() as { message: string }).message, /--index/);
  } finally {
    await s.close();
  }
});

test('--db serves a LanceDB collection of the same images: the same neighbours and scores as the exact index, label filter, thumbnails by id; a dim mismatch fails loading', async () => {
  const { Collection, indexImages } = await import('../../src/collections/index.js');
  const db = join(dir, 'db');
  const enc = loadEncoder(ckpt);
  const coll = await Collection.open(db, { dim: enc.dim('backbone'), pretrained: ckpt, feature: 'backbone' });
  await indexImages(enc, files, coll);
  coll.close();
  enc.dispose();
  const s = buildServer({ pretrained: ckpt, db });
  try {
    await s.moco.loaded;
    const info = (await s.inject('/v1/info')).json() as { index: { kind: string; size: number } };
    assert.equal(info.index.kind, 'lancedb');
    assert.equal(info.index.size, files.length);
    const body = { data: readFileSync(files[1]!), type: 'image/png' };
    const ours = (
      await s.inject({
        method: 'POST',
        url: '/v1/search?top=4',
        headers: { 'content-type': body.type },
        payload: body.data,
      })
    ).json() as {
      results: { neighbours: { row: number; path: string; score: number; label: string; thumbnail: string }[] }[];
    };
    const ref = (
      await app.inject({
        method: 'POST',
        url: '/v1/search?top=4',
        headers: { 'content-type': body.type },
        payload: body.data,
      })
    ).json() as typeof ours;
    const a = ours.results[0]!.neighbours;
    const b = ref.results[0]!.neighbours;
    assert.deepEqual(
      a.map((n) => n.path),
      b.map((n) => n.path),
    );
    a.forEach((n, i) => assert.ok(Math.abs(n.score - b[i]!.score) < 1e-4, `${n.score} vs ${b[i]!.score}`));
    const dogs = (
      await s.inject({
        method: 'POST',
        url: '/v1/search?top=3&label=dog',
        headers: { 'content-type': body.type },
        payload: body.data,
      })
    ).json() as typeof ours;
    assert.ok(dogs.results[0]!.neighbours.every((n) => n.label === 'dog'));
    const th = await s.inject(a[0]!.thumbnail);
    assert.equal(th.statusCode, 200);
    assert.equal(th.headers['content-type'], 'image/jpeg');
    assert.equal((await s.inject('/v1/thumbnail/12345')).statusCode, 404);
  } finally {
    await s.close();
  }
  const other = tinyCheckpoint(dir, { cifar: false, seed: 1 });
  const wide = createWideIndex(dir);
  const s2 = buildServer({ pretrained: other, index: wide });
  await assert.rejects(s2.moco.loaded, /holds 3-d vectors but the model .* gives 64-d/);
  await s2.close();
});

function createWideIndex(d: string): string {
  // A 3-d index written as .jsonl by hand: the server must refuse to pair it with a 64-d model.
  const file = join(d, 'three.jsonl');
  writeFileSync(file, [0, 1].map((i) => JSON.stringify({ path: `p${i}.png`, embedding: [1, i, 0] })).join('\n') + '\n');
  return file;
}

test('colour modes: grayscale, RGBA, 16-bit, palette and CMYK inputs all embed as RGB; several images search at once', async () => {
  await app.moco.loaded;
  const sharp = (await import('sharp')).default;
  const base = readFileSync(files[4]!);
  const variants: Record<string, Buffer> = {
    gray: await sharp(base).grayscale().png().toBuffer(),
    rgba: await sharp(base).ensureAlpha().png().toBuffer(),
    png16: await sharp(base).png().toColourspace('rgb16').toBuffer(),
    palette: await sharp(base).png({ palette: true, colours: 16 }).toBuffer(),
    cmyk: await sharp(base).toColourspace('cmyk').jpeg().toBuffer(),
    webp: await sharp(base).webp({ lossless: true }).toBuffer(),
  };
  const ref = (
    (
      await app.inject({ method: 'POST', url: '/v1/embed', headers: { 'content-type': 'image/png' }, payload: base })
    ).json() as { vectors: number[][] }
  ).vectors[0]!;
  for (const [name, bytes] of Object.entries(variants)) {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/embed',
      headers: { 'content-type': 'application/octet-stream' },
      payload: bytes,
    });
    assert.equal(r.statusCode, 200, `${name}: ${r.body}`);
    const v = (r.json() as { vectors: number[][] }).vectors[0]!;
    assert.equal(v.length, 64, name);
    assert.ok(v.every(Number.isFinite), `${name}: finite`);
    if (name === 'rgba' || name === 'png16' || name === 'webp')
      assert.ok(maxAbsDiff(v, ref) <= 1e-4, `${name}: same pixels, same vector`);
  }
  const mp = multipart(
    [files[0]!, files[11]!].map((f, i) => ({
      name: 'image',
      filename: `q${i}.png`,
      type: 'image/png',
      data: readFileSync(f),
    })),
  );
  const s = await app.inject({
    method: 'POST',
    url: '/v1/search?top=1',
    headers: { 'content-type': mp.type },
    payload: mp.body,
  });
  assert.equal(s.statusCode, 200, s.body);
  const res = (s.json() as { results: { query: string; neighbours: { path: string }[] }[] }).results;
  assert.deepEqual(
    res.map((r) => [r.query, r.neighbours[0]!.path]),
    [
      ['q0.png', 'cat/0.png'],
      ['q1.png', 'fish/3.png'],
    ],
  );
});
