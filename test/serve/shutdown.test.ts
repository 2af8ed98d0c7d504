// A real server on 127.0.0.1: concurrent requests share forward passes (and do not with batching off), health
// checks answer while a batch computes (onnxruntime runs in a child process), a full queue answers 503 with
// Retry-After, and a drain — in process and by SIGTERM to `moco serve` — finishes the accepted work and closes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildServer, type ServeOptions } from '../../src/serve/index.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';
import { patternImage, tinyCheckpoint } from './fixtures.js';

let dir = '';
let slowCkpt = '';
let images: Buffer[] = [];

before(async () => {
  dir = tmpDir('moco-serve-real-');
  // ImageNet stem at 224 px and width 32: a forward of a few images takes long enough to overlap requests.
  slowCkpt = tinyCheckpoint(dir, { cifar: false, width: 32 });
  images = await Promise.all(
    Array.from({ length: 32 }, (_, i) => patternImage(i, { width: 240, height: 240, kind: i % 3, format: 'jpeg' })),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function listen(o: Partial<ServeOptions>): Promise<{ app: FastifyInstance; url: string }> {
  const app = buildServer({ pretrained: slowCkpt, ...o });
  await app.moco.loaded;
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

const embed = (url: string, img: Buffer): Promise<Response> =>
  fetch(`${url}/v1/embed`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(img) });

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test('concurrent requests are batched into shared forward passes; /healthz answers while a batch computes', async () => {
  const { app, url } = await listen({ maxBatch: 32, maxDelayMs: 50 });
  try {
    let embedsDone = 0;
    const all = Promise.all(
      images.slice(0, 16).map(async (img) => {
        const r = await embed(url, img);
        embedsDone++;
        return r;
      }),
    );
    await until(() => app.moco.batcher!.busy, 'a forward pass');
    const h = await fetch(`${url}/healthz`);
    assert.equal(h.status, 200);
    const busyAtHealth = app.moco.batcher!.busy;
    const rs = await all;
    for (const r of rs) assert.equal(r.status, 200);
    assert.ok(busyAtHealth || embedsDone < 16, 'healthz answered while embedding work was still running');
    const st = app.moco.batcher!.stats;
    assert.equal(st.images, 16);
    assert.ok(
      st.batches < 16 && st.largestBatch > 1,
      `16 requests in ${st.batches} forward passes (largest ${st.largestBatch})`,
    );
    // Same image, same vector, whichever batch it rode in.
    const v1 = ((await rs[3]!.json()) as { vectors: number[][] }).vectors[0]!;
    const v2 = ((await (await embed(url, images[3]!)).json()) as { vectors: number[][] }).vectors[0]!;
    let d = 0;
    v1.forEach((x, i) => {
      d = Math.max(d, Math.abs(x - v2[i]!));
    });
    assert.ok(d < 1e-5, `batched vs alone: max abs diff ${d}`);
  } finally {
    await app.close();
  }
  const off = await listen({ maxBatch: 1 });
  try {
    const rs = await Promise.all(images.slice(0, 8).map((img) => embed(off.url, img)));
    for (const r of rs) assert.equal(r.status, 200);
    assert.equal(off.app.moco.batcher!.stats.batches, 8, 'batching off: one forward pass a request');
  } finally {
    await off.app.close();
  }
});

test('a full queue answers 503 with Retry-After, and the server serves again once it drains', async () => {
  const { app, url } = await listen({ maxBatch: 1, maxDelayMs: 0, maxQueue: 3 });
  try {
    const rs = await Promise.all(images.slice(0, 24).map((img) => embed(url, img)));
    const codes = rs.map((r) => r.status);
    const refused = rs.filter((r) => r.status === 503);
    assert.ok(refused.length > 0, `some requests refused: ${codes.join(' ')}`);
    assert.ok(codes.filter((c) => c === 200).length >= 3, `the queued ones served: ${codes.join(' ')}`);
    assert.ok(
      codes.every((c) => c === 200 || c === 503),
      codes.join(' '),
    );
    for (const r of refused) {
      assert.equal(r.headers.get('retry-after'), '1');
      assert.match(((await r.json()) as { message: string }).message, /queue is full/);
    }
    assert.equal((await embed(url, images[0]!)).status, 200);
  } finally {
    await app.close();
  }
});

test('drain: not ready, accepted work finishes, new connections refused', async () => {
  const { app, url } = await listen({ maxBatch: 2, maxDelayMs: 0 });
  const pending = images.slice(0, 8).map((img) => embed(url, img));
  await until(() => app.moco.batcher!.stats.images + app.moco.batcher!.waiting === 8, 'all 8 images queued');
  const closing = app.moco.drain();
  assert.equal(app.moco.phase, 'draining');
  assert.equal((await app.inject('/readyz')).statusCode, 503);
  await assert.rejects(fetch(`${url}/healthz`), 'no new connections while draining');
  const rs = await Promise.all(pending);
  assert.deepEqual(
    rs.map((r) => r.status),
    Array(8).fill(200),
  );
  await closing;
});

test('SIGTERM to moco serve: in-flight requests answered, exit 0', async () => {
  const p = spawn(
    process.execPath,
    [
      join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
      'serve',
      '--pretrained',
      slowCkpt,
      '--port',
      '0',
      '--batch',
      '1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  try {
    await until(() => /ready:/.test(stderr) || p.exitCode !== null, 'moco serve ready', 120_000);
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1];
    assert.ok(url, stderr);
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    const pending = images.slice(0, 10).map((img) => embed(url, img));
    await new Promise((r) => setTimeout(r, 300)); // the uploads are in; the forwards (one image each) are not done
    p.kill('SIGTERM');
    const rs = await Promise.all(pending);
    assert.deepEqual(
      rs.map((r) => r.status),
      Array(10).fill(200),
      stderr,
    );
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /SIGTERM: draining/);
    assert.match(stderr, /closed/);
    await assert.rejects(fetch(`${url}/healthz`));
  } finally {
    if (p.exitCode === null) p.kill('SIGKILL');
  }
});

test('SIGTERM with a trickling upload: moco serve closes it at --drain-timeout and exits', async () => {
  const p = spawn(
    process.execPath,
    [
      join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
      'serve',
      '--pretrained',
      slowCkpt,
      '--port',
      '0',
      '--drain-timeout',
      '1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  let timer: NodeJS.Timeout | undefined;
  try {
    await until(() => /ready:/.test(stderr) || p.exitCode !== null, 'moco serve ready', 120_000);
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stderr);
    assert.ok(m, stderr);
    const sock = connect(Number(m[1]), '127.0.0.1');
    sock.on('error', () => undefined);
    await new Promise<void>((r) => sock.on('connect', () => r()));
    sock.write(
      'POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n',
    );
    timer = setInterval(() => sock.write('x'), 100);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    p.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000))]);
    const s = (Date.now() - t0) / 1000;
    assert.equal(code, 0, `exit ${code} after ${s} s: ${stderr}`);
    assert.ok(s < 8, `exited ${s.toFixed(1)} s after SIGTERM with --drain-timeout 1`);
    sock.destroy();
  } finally {
    clearInterval(timer);
    if (p.exitCode === null) p.kill('SIGKILL');
  }
});
