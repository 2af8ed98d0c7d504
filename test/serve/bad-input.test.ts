// Bad requests get their 4xx with a message, never a 500, and the server keeps serving: after each bad request
// of the table a good one still returns the right embedding. The table runs against both search backends (an
// exact index and a LanceDB collection); numbers are never coerced (`top: true` is not 1) and no answer names an
// absolute server path unless the server was started with absolutePaths. The 50 MB body and the malformed multipart also
// go over a real socket (127.0.0.1), where the server must answer before reading all of a too-large upload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync, rmSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/serve/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { buildCollection, buildIndex, labelledImages, patternImage, tinyCheckpoint } from './fixtures.js';

let dir = '';
let ckpt = '';
let app: FastifyInstance;
/** The exact-index server (`app`) and the same images and model served from a LanceDB collection (`--db`). */
const servers = {} as Record<'index' | 'db', FastifyInstance>;
let good: Buffer;
let goodVector: number[];

/** A valid PNG of width×height 1-bit gray pixels, all zero: a few tens of KB that decode to `width·height` pixels. */
function bombPng(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // grayscale
  const raw = Buffer.alloc(height * (1 + Math.ceil(width / 8))); // filter byte 0 + zero pixels, each row
  return Buffer.concat([
    Buffer.from('89504e470d0a1a0a', 'hex'),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

before(async () => {
  dir = tmpDir('moco-serve-bad-');
  ckpt = tinyCheckpoint(dir);
  const files = await labelledImages(dir, ['a', 'b'], 2);
  app = buildServer({ pretrained: ckpt, index: await buildIndex(ckpt, files, join(dir, 'e.npy')) });
  await app.moco.loaded;
  servers.index = app;
  servers.db = buildServer({ pretrained: ckpt, db: await buildCollection(ckpt, files, join(dir, 'db')) });
  await servers.db.moco.loaded;
  await app.listen({ port: 0, host: '127.0.0.1' });
  good = readFileSync(files[1]!);
  const r = await app.inject({
    method: 'POST',
    url: '/v1/embed',
    headers: { 'content-type': 'image/png' },
    payload: good,
  });
  goodVector = (r.json() as { vectors: number[][] }).vectors[0]!;
});
after(async () => {
  await app?.close();
  await servers.db?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function stillServes(app: FastifyInstance): Promise<void> {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/embed',
    headers: { 'content-type': 'image/png' },
    payload: good,
  });
  assert.equal(r.statusCode, 200, r.body);
  assert.deepEqual((r.json() as { vectors: number[][] }).vectors[0], goodVector);
}

/** Fails when an answer names the test's folder (every server path here is under it). */
function noAbsolutePath(what: string, body: string): void {
  assert.ok(!body.includes(dir), `${what}: the answer names a server path: ${body.slice(0, 300)}`);
}

for (const backend of ['index', 'db'] as const)
  test(`the bad-input table (--${backend}): each request gets its 4xx and the server serves the next good request`, async () => {
    const app = servers[backend];
    const jpeg = await patternImage(1, { width: 64, height: 64, format: 'jpeg' });
    const bomb = bombPng(20000, 20000);
    assert.ok(bomb.length < 100_000, `the 20000×20000 PNG is ${bomb.length} bytes`);
    const boundary = 'xyz';
    const cases: {
      name: string;
      url?: string;
      type?: string;
      body?: Buffer | string | object;
      status: number;
      error?: RegExp;
    }[] = [
      { name: 'empty body (image/png)', type: 'image/png', body: Buffer.alloc(0), status: 400, error: /empty body/ },
      { name: 'no body at all', status: 400, error: /empty body/ },
      {
        name: 'truncated JPEG',
        type: 'image/jpeg',
        body: jpeg.subarray(0, Math.floor(jpeg.length / 2)),
        status: 422,
        error: /could not be decoded|not a readable image/,
      },
      {
        name: 'text file as text/plain',
        type: 'text/plain',
        body: 'just some text\n',
        status: 415,
        error: /not accepted/,
      },
      {
        name: 'text file labelled image/png',
        type: 'image/png',
        body: Buffer.from('just some text\n'),
        status: 422,
        error: /not a readable image/,
      },
      {
        name: 'unsupported type (application/pdf)',
        type: 'application/pdf',
        body: Buffer.from('%PDF-1.4'),
        status: 415,
      },
      { name: 'JSON to /v1/embed', type: 'application/json', body: { image: 'x' }, status: 415 },
      {
        name: '20000×20000 PNG of a few KB',
        type: 'image/png',
        body: bomb,
        status: 413,
        error: /20000×20000 = 400000000 pixels; the limit is 50000000/,
      },
      { name: '50 MB body', type: 'image/png', body: Buffer.alloc(50 * 2 ** 20, 1), status: 413 },
      {
        name: 'wrong vector length',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: [0.1, 0.2, 0.3] },
        status: 400,
        error: /3 values; this model and index are 64-d/,
      },
      { name: 'vector of strings', url: '/v1/search', type: 'application/json', body: { vector: ['a'] }, status: 400 },
      { name: 'bad JSON', url: '/v1/search', type: 'application/json', body: '{"vector": [1, 2', status: 400 },
      {
        name: 'top out of range',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: 0 },
        status: 400,
        error: /^body\/top must be a decimal integer in 1…1000; got 0$/,
      },
      // Numbers are JSON numbers holding integers, never coerced from other types.
      {
        name: 'top: true',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: true },
        status: 400,
        error: /^body\/top must be a decimal integer in 1…1000; got true$/,
      },
      {
        name: 'top: "5"',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: '5' },
        status: 400,
        error: /^body\/top must be a decimal integer in 1…1000; got "5"$/,
      },
      {
        name: 'top: 1.5',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: 1.5 },
        status: 400,
        error: /body\/top must be a decimal integer in 1…1000; got 1\.5/,
      },
      {
        name: 'top: -3',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: -3 },
        status: 400,
        error: /body\/top must be a decimal integer in 1…1000; got -3/,
      },
      {
        name: 'top: 1001',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: 1001 },
        status: 400,
        error: /body\/top must be a decimal integer in 1…1000; got 1001/,
      },
      {
        name: 'top: 1e300',
        url: '/v1/search',
        type: 'application/json',
        body: '{"vector": ' + JSON.stringify(goodVector) + ', "top": 1e300}',
        status: 400,
        error: /body\/top must be a decimal integer in 1…1000/,
      },
      {
        name: 'top: null',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, top: null },
        status: 400,
        error: /body\/top must be a decimal integer in 1…1000; got null/,
      },
      {
        name: 'filter label: a number',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, filter: { label: 5 } },
        status: 400,
        error: /body\/filter\/label/,
      },
      ...['0', '-1', '1.5', '1e1', '0x10', '05', '+5', ' 5', '1001', '99999999999999999999', 'true', ''].map((top) => ({
        name: `query top=${JSON.stringify(top)}`,
        url: `/v1/search?top=${encodeURIComponent(top)}`,
        type: 'image/png',
        body: good,
        status: 400,
        error: new RegExp(
          `^querystring/top must be a decimal integer in 1…1000; got ${JSON.stringify(top).replace(/[+.]/g, '\\$&')}$`,
        ),
      })),
      {
        name: 'query top given twice',
        url: '/v1/search?top=1&top=2',
        type: 'image/png',
        body: good,
        status: 400,
        error: /querystring\/top/,
      },
      {
        name: 'malformed multipart (cut off)',
        type: `multipart/form-data; boundary=${boundary}`,
        body: `--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG`,
        status: 400,
        error: /multipart/,
      },
      { name: 'multipart without boundary', type: 'multipart/form-data', body: 'nothing', status: 400 },
      {
        name: 'multipart with a text file',
        type: `multipart/form-data; boundary=${boundary}`,
        body: `--${boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${boundary}--\r\n`,
        status: 415,
      },
      { name: 'unknown route', url: '/v1/embedd', type: 'image/png', body: good, status: 404 },
      {
        name: 'multipart of three 6 MiB files (each under the 16 MiB limit, 18 MiB in all)',
        type: `multipart/form-data; boundary=${boundary}`,
        body: Buffer.concat(
          [0, 1, 2]
            .flatMap((i) => [
              Buffer.from(
                `--${boundary}\r\nContent-Disposition: form-data; name="f${i}"; filename="${i}.png"\r\nContent-Type: image/png\r\n\r\n`,
              ),
              Buffer.alloc(6 * 2 ** 20, 9),
              Buffer.from('\r\n'),
            ])
            .concat(Buffer.from(`--${boundary}--\r\n`)),
        ),
        status: 413,
        error: /limit for a whole request is 16777216/,
      },
      {
        name: 'filter with an empty label list',
        url: '/v1/search',
        type: 'application/json',
        body: { vector: goodVector, filter: { label: [] } },
        status: 400,
        error: /fewer than 1 items|must NOT have fewer/,
      },
    ];
    for (const c of cases) {
      const r = await app.inject({
        method: 'POST',
        url: c.url ?? '/v1/embed',
        headers: c.type ? { 'content-type': c.type } : {},
        payload:
          c.body === undefined
            ? undefined
            : typeof c.body === 'string' || Buffer.isBuffer(c.body)
              ? c.body
              : JSON.stringify(c.body),
      });
      assert.equal(r.statusCode, c.status, `${c.name}: ${r.statusCode} ${r.body.slice(0, 300)}`);
      const j = r.json() as { error: string; message: string };
      assert.ok(j.error && j.message, `${c.name}: an error code and a message`);
      if (c.error) assert.match(j.message, c.error, c.name);
      noAbsolutePath(c.name, r.body);
      await stillServes(app);
    }
    // The good answers name no server path either: image paths are relative to the indexed folder, files by name.
    const q = await app.inject({
      method: 'POST',
      url: '/v1/search?top=4',
      headers: { 'content-type': 'image/png' },
      payload: good,
    });
    assert.equal(q.statusCode, 200, q.body);
    assert.deepEqual(
      (q.json() as { results: { neighbours: { path: string }[] }[] }).results[0]!.neighbours.map((n) => n.path).sort(),
      ['a/0.png', 'a/1.png', 'b/0.png', 'b/1.png'],
    );
    const v = await app.inject({
      method: 'POST',
      url: '/v1/search',
      payload: { vector: goodVector, top: 2, filter: { pathPrefix: 'b/' } },
    });
    assert.deepEqual(
      (v.json() as { results: { neighbours: { path: string }[] }[] }).results[0]!.neighbours.map((n) => n.path).sort(),
      ['b/0.png', 'b/1.png'],
      'a path prefix is relative to the indexed folder too',
    );
    for (const url of [
      '/v1/info',
      '/model.json',
      '/model.onnx',
      '/openapi.json',
      '/readyz',
      '/v1/thumbnail/123456789',
    ]) {
      const r = await app.inject(url);
      assert.ok(r.statusCode < 500, `${url}: ${r.statusCode}`);
      noAbsolutePath(url, r.rawPayload.toString('latin1'));
    }
  });

test('absolutePaths (--absolute-paths) reports the absolute paths of the images, the model and the index', async () => {
  const s = buildServer({ pretrained: ckpt, index: join(dir, 'e.npy'), absolutePaths: true });
  try {
    await s.moco.loaded;
    const info = (await s.inject('/v1/info')).json() as { model: { source: string }; index: { source: string } };
    assert.equal(info.model.source, ckpt);
    assert.equal(info.index.source, join(dir, 'e.npy'));
    const q = await s.inject({
      method: 'POST',
      url: '/v1/search?top=1',
      headers: { 'content-type': 'image/png' },
      payload: good,
    });
    assert.equal(
      (q.json() as { results: { neighbours: { path: string }[] }[] }).results[0]!.neighbours[0]!.path,
      join(dir, 'images', 'a', '1.png'),
    );
  } finally {
    await s.close();
  }
});

function post(port: number, path: string, type: string, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: { 'content-type': type, 'content-length': body.length },
      },
      (res) => {
        let s = '';
        res.on('data', (d: Buffer) => {
          s += d.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: s }));
      },
    );
    // The server may answer and close while a too-large body is still being sent.
    req.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e),
    );
    req.end(body);
  });
}

test('over a real socket: 50 MB body → 413, malformed multipart → 400, then a good request → 200', async () => {
  const port = (app.server.address() as AddressInfo).port;
  const big = await post(port, '/v1/embed', 'image/png', Buffer.alloc(50 * 2 ** 20, 7));
  assert.equal(big.status, 413, big.body);
  const mp = await post(
    port,
    '/v1/embed',
    'multipart/form-data; boundary=b',
    Buffer.from(
      '--b\r\nContent-Disposition: form-data; name="f"; filename="x.png"\r\nContent-Type: image/png\r\n\r\nabc',
    ),
  );
  assert.equal(mp.status, 400, mp.body);
  const ok = await post(port, '/v1/embed', 'image/png', good);
  assert.equal(ok.status, 200, ok.body);
  assert.deepEqual((JSON.parse(ok.body) as { vectors: number[][] }).vectors[0], goodVector);
});

test('thumbnail rows are decimal numbers: 0x10 and 1e1 are 400, not rows 16 and 10', async () => {
  for (const row of ['0x10', '1e1', '-1', '01', '1.5']) {
    const r = await app.inject({ method: 'GET', url: `/v1/thumbnail/${row}` });
    assert.equal(r.statusCode, 400, `${row}: ${r.body}`);
  }
  assert.equal((await app.inject({ method: 'GET', url: '/v1/thumbnail/1' })).statusCode, 200);
  assert.equal((await app.inject({ method: 'GET', url: '/v1/thumbnail/999' })).statusCode, 404);
});

test('browser-facing defaults: nosniff and frame-ancestors on every answer; a foreign Host gets 403, IP addresses and localhost are served', async () => {
  const ok = await app.inject({ method: 'GET', url: '/healthz', headers: { host: '127.0.0.1:8080' } });
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.headers['x-content-type-options'], 'nosniff');
  assert.match(String(ok.headers['content-security-policy']), /frame-ancestors 'none'/);
  for (const host of ['localhost:8080', '[::1]:8080', '10.1.2.3'])
    assert.equal((await app.inject({ method: 'GET', url: '/healthz', headers: { host } })).statusCode, 200, host);
  const evil = await app.inject({ method: 'GET', url: '/v1/info', headers: { host: 'evil.example' } });
  assert.equal(evil.statusCode, 403);
  assert.match(evil.body, /--allowed-hosts evil\.example/);
  const page = await app.inject({ method: 'GET', url: '/', headers: { host: 'evil.example:8080' } });
  assert.equal(page.statusCode, 403);
});

test('a body that trickles in gets 408 within the request timeout and its connection is closed', async () => {
  const slow = buildServer({ pretrained: tinyCheckpoint(dir), requestTimeoutMs: 1000 });
  try {
    await slow.listen({ port: 0, host: '127.0.0.1' });
    const port = (slow.server.address() as AddressInfo).port;
    const t0 = performance.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      let got = '';
      let timer: NodeJS.Timeout | undefined;
      sock.on('connect', () => {
        sock.write(
          'POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n',
        );
        timer = setInterval(() => sock.write('x'), 200);
      });
      sock.on('data', (d: Buffer) => {
        got += d.toString();
      });
      sock.on('error', (e: NodeJS.ErrnoException) =>
        e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e),
      );
      const giveUp = setTimeout(() => {
        clearInterval(timer);
        sock.destroy();
      }, 10_000);
      sock.on('close', () => {
        clearInterval(timer);
        clearTimeout(giveUp);
        resolve(got);
      });
    });
    const ms = performance.now() - t0;
    assert.match(answer, /^HTTP\/1\.1 408/, answer.slice(0, 200));
    assert.match(answer, /--request-timeout/);
    assert.ok(ms < 4000, `answered and closed after ${ms.toFixed(0)} ms`);
    assert.equal((await slow.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'still serving');
  } finally {
    await slow.close();
  }
});
