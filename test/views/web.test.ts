// The browser page in Debian's chromium (offline, only the 127.0.0.1 server reachable): pick a generated image,
// the page embeds it with onnxruntime-web exactly as the model's recorded preprocessing says, the vector matches
// onnxruntime-node's for the same file (cosine ≥ 0.99), and the neighbours from /v1/search render with their
// thumbnails; no console errors. A screenshot goes to /tmp/serve-shots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/serve/index.js';
import { embedFilesOnnx } from '../../src/eval/onnx-embed.js';
import { launchBrowser, openGuarded } from '../helpers/browser.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';
import Fastify from 'fastify';
import fastifyStatic from '@fastify/static';
import { buildIndex, labelledImages, patternImage, tinyCheckpoint } from '../serve/fixtures.js';

const SHOTS = '/tmp/serve-shots';
let dir = '';
let browser: Browser;
let app: FastifyInstance;
let origin = '';
let ckpt = '';
let files: string[] = [];

before(async () => {
  dir = tmpDir('moco-web-');
  mkdirSync(SHOTS, { recursive: true });
  // ImageNet stem: the page must resize the shorter side and center-crop, as the server does.
  ckpt = tinyCheckpoint(dir, { cifar: false, seed: 11 });
  files = await labelledImages(dir, ['stripes', 'bands', 'plain'], 4, 96);
  app = buildServer({ pretrained: ckpt, index: await buildIndex(ckpt, files, join(dir, 'gallery.npy')) });
  await app.moco.loaded;
  await app.listen({ port: 0, host: '127.0.0.1' });
  origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  return d / Math.sqrt(na * nb);
}

/**
 * The hits' thumbnails' natural widths (0 for one that failed), once all eight have finished loading: the page
 * draws the hits first and the thumbnails arrive after, so reading them at once raced their loads (CI, 2.13 leg).
 */
async function thumbnails(page: Page): Promise<number[]> {
  await page.waitForFunction(
    () => {
      const ims = [...document.querySelectorAll('#hits .hit img')] as HTMLImageElement[];
      return ims.length === 8 && ims.every((i) => i.complete);
    },
    null,
    { timeout: 30_000 },
  );
  return page.$$eval('#hits .hit img', (ims) => ims.map((i) => (i as HTMLImageElement).naturalWidth));
}

test('served page: picked image embedded in the browser ≈ onnxruntime-node, neighbours with thumbnails', async () => {
  const img = await patternImage(5, { width: 320, height: 200, kind: 1, format: 'jpeg' });
  const file = join(dir, 'query.jpg');
  writeFileSync(file, img);
  const model = join(dir, 'served.onnx');
  writeFileSync(model, (await app.inject('/model.onnx')).rawPayload);
  const ref = await embedFilesOnnx(model, [file], { isolate: true });

  const { page, errors, blocked } = await openGuarded(browser, {
    allow: (u) => u.startsWith(`${origin}/`) || /^(data|blob):/.test(u),
  });
  await page.goto(`${origin}/`);
  await page.waitForSelector('#status[data-state="ready"]', { timeout: 60_000 });
  assert.equal(
    await page.evaluate(() => self.crossOriginIsolated),
    true,
    'COOP/COEP make the page cross-origin isolated',
  );
  await page.setInputFiles('#file', { name: 'query.jpg', mimeType: 'image/jpeg', buffer: img });
  await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 60_000 });
  const last = await page.evaluate(
    () => (window as unknown as { mocoLast: { vector: number[]; hits: { row: number; label: string }[] } }).mocoLast,
  );
  assert.ok(last, (await page.textContent('#status')) ?? '');
  assert.equal(last.vector.length, ref.dim);
  const c = cosine(last.vector, ref.data);
  assert.ok(c >= 0.99, `cosine(browser, onnxruntime-node) = ${c}`);
  console.error(`cosine(browser, onnxruntime-node) = ${c.toFixed(6)}`);
  assert.equal(last.hits.length, 8);
  // The page's neighbours are the server's for the node vector too (same model, same index).
  const server = await app.inject({
    method: 'POST',
    url: '/v1/search',
    payload: { vector: Array.from(ref.data), top: 8 },
  });
  const serverRows = (server.json() as { results: { neighbours: { row: number }[] }[] }).results[0]!.neighbours.map(
    (h) => h.row,
  );
  // (Only the best one: further down, a random-init tiny model's scores are near ties that a 1e-3 change reorders.)
  assert.equal(last.hits[0]!.row, serverRows[0]);
  const thumbs = await thumbnails(page);
  assert.equal(thumbs.length, 8);
  assert.ok(
    thumbs.every((w) => w === 160),
    `thumbnails loaded: ${thumbs.join(',')}`,
  );
  // Dropping a file works as picking one.
  const dropped = await patternImage(2, { width: 150, height: 260, kind: 2, format: 'png' });
  const dt = await page.evaluateHandle((b64) => {
    const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    const d = new DataTransfer();
    d.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
    return d;
  }, dropped.toString('base64'));
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
  await page.waitForFunction(
    () => (window as unknown as { mocoLast?: { name: string } }).mocoLast?.name === 'dropped.png',
    null,
    { timeout: 60_000 },
  );
  await page.waitForSelector('#status[data-state="done"]');
  const droppedFile = join(dir, 'dropped.png');
  writeFileSync(droppedFile, dropped);
  const dref = await embedFilesOnnx(model, [droppedFile], { isolate: true });
  const dv = await page.evaluate(() => (window as unknown as { mocoLast: { vector: number[] } }).mocoLast.vector);
  assert.ok(cosine(dv, dref.data) >= 0.99, `dropped: cosine ${cosine(dv, dref.data)}`);
  await page.setInputFiles('#file', { name: 'query.jpg', mimeType: 'image/jpeg', buffer: img });
  await page.waitForFunction(
    () => (window as unknown as { mocoLast?: { name: string } }).mocoLast?.name === 'query.jpg',
    null,
    { timeout: 60_000 },
  );
  await page.waitForSelector('#status[data-state="done"]');
  await page.screenshot({ path: join(SHOTS, 'served.png'), fullPage: true });
  assert.deepEqual(errors, []);
  assert.deepEqual(blocked, []);
  await page.context().close();
});

test('static export (moco export --format onnx --web): the page compares against its bundled gallery, no server API', async () => {
  const out = join(dir, 'web');
  execFileSync(
    process.execPath,
    [
      join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
      'export',
      ckpt,
      '--format',
      'onnx',
      '--web',
      out,
      '--gallery',
      join(dir, 'images'),
    ],
    { stdio: 'pipe' },
  );
  for (const f of [
    'index.html',
    'app.js',
    'style.css',
    'model.onnx',
    'model.json',
    'gallery.json',
    'ort/ort.wasm.min.mjs',
    'ort/ort-wasm-simd-threaded.wasm',
  ])
    assert.ok(existsSync(join(out, f)), f);
  const meta = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')) as {
    server: boolean;
    gallerySize: number;
    preprocessing: { size: number; resize: number };
  };
  assert.equal(meta.server, false);
  assert.equal(meta.gallerySize, files.length);
  assert.deepEqual([meta.preprocessing.size, meta.preprocessing.resize], [224, 256]);
  // Any static file server: here one without cross-origin isolation headers (the page falls back to one thread).
  const st = Fastify();
  await st.register(fastifyStatic, { root: out });
  await st.listen({ port: 0, host: '127.0.0.1' });
  const so = `http://127.0.0.1:${(st.server.address() as AddressInfo).port}`;
  try {
    const gallery = JSON.parse(readFileSync(join(out, 'gallery.json'), 'utf8')) as {
      items: { name: string; vector: number[] }[];
    };
    const query = files[7]!;
    const { page, errors, blocked } = await openGuarded(browser, {
      allow: (u) => u.startsWith(`${so}/`) || /^(data|blob):/.test(u),
    });
    await page.goto(`${so}/`);
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 60_000 });
    await page.setInputFiles('#file', { name: 'q.png', mimeType: 'image/png', buffer: readFileSync(query) });
    await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 60_000 });
    const last = await page.evaluate(
      () => (window as unknown as { mocoLast: { vector: number[]; hits: { path: string; score: number }[] } }).mocoLast,
    );
    assert.ok(last, (await page.textContent('#status')) ?? '');
    // The gallery vector of the same file was computed by onnxruntime-node in the export.
    const c = cosine(last.vector, gallery.items.find((i) => i.name === query)!.vector);
    assert.ok(c >= 0.99, `cosine(browser, onnxruntime-node) = ${c}`);
    console.error(`static page: cosine(browser, onnxruntime-node) = ${c.toFixed(6)}`);
    assert.equal(last.hits.length, 8);
    assert.equal(last.hits[0]!.path, query, 'a gallery image finds itself first');
    const thumbs = await thumbnails(page);
    assert.ok(thumbs.length === 8 && thumbs.every((w) => w === 160), `thumbnails loaded: ${thumbs.join(',')}`);
    await page.screenshot({ path: join(SHOTS, 'static.png'), fullPage: true });
    assert.deepEqual(errors, []);
    assert.deepEqual(blocked, []);
    await page.context().close();
  } finally {
    await st.close();
  }
});
