// downloadCifar against a local HTTP server serving a small generated release (never the real internet).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { c as createTar } from 'tar';
import { Cifar, downloadCifar } from '../../src/data/datasets/index.js';
import { tmpDir } from '../helpers/pytorch.js';

let dir: string;
let server: Server;
let base: string;
let archive: Buffer;
let md5: string;
const requests: string[] = [];
const CLASSES = Array.from({ length: 10 }, (_, i) => `kind${i}`);

/** A 3,073-byte CIFAR-10 record: the label, then R, G, B planes of 1,024 bytes filled with v, v+1, v+2. */
const rec = (label: number, v: number): Buffer =>
  Buffer.concat([Buffer.from([label]), Buffer.alloc(1024, v), Buffer.alloc(1024, v + 1), Buffer.alloc(1024, v + 2)]);
// Train: batch b holds labels b and (b + 5) % 10; test: three records.
const trainLabels = [1, 2, 3, 4, 5].flatMap((b) => [b, (b + 5) % 10]);
const trainValue = (i: number): number => 10 * i + 1;

before(async () => {
  dir = tmpDir('moco-dl-');
  const rel = join(dir, 'src', 'cifar-10-batches-bin');
  mkdirSync(rel, { recursive: true });
  for (let b = 1; b <= 5; b++) {
    writeFileSync(
      join(rel, `data_batch_${b}.bin`),
      Buffer.concat([0, 1].map((j) => rec(trainLabels[2 * (b - 1) + j]!, trainValue(2 * (b - 1) + j)))),
    );
  }
  writeFileSync(join(rel, 'test_batch.bin'), Buffer.concat([rec(7, 200), rec(0, 210), rec(9, 220)]));
  writeFileSync(join(rel, 'batches.meta.txt'), `${CLASSES.join('\n')}\n\n`);
  const file = join(dir, 'release.tar.gz');
  await createTar({ gzip: true, file, cwd: join(dir, 'src') }, ['cifar-10-batches-bin']);
  archive = readFileSync(file);
  md5 = createHash('md5').update(archive).digest('hex');

  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/cifar-10-binary.tar.gz') {
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': archive.length });
      res.end(archive);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not here');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

/** What is left in a root after a failed download: nothing (no release folder, no temporary folder). */
const leftovers = (root: string): string[] => (existsSync(root) ? readdirSync(root) : []);

test('downloads, checks the MD5, extracts; Cifar then reads the labels and pixels', async () => {
  const root = join(dir, 'ok');
  const seen: Array<[number, number | null]> = [];
  const n = requests.length;
  const got = await downloadCifar(root, 10, {
    url: `${base}/cifar-10-binary.tar.gz`,
    md5,
    onProgress: (b, t) => seen.push([b, t]),
  });
  assert.equal(got, join(root, 'cifar-10-batches-bin'));
  assert.equal(requests.length, n + 1);
  assert.deepEqual(seen[0], [0, archive.length]);
  assert.deepEqual(seen.at(-1), [archive.length, archive.length]);
  assert.deepEqual(readdirSync(root), ['cifar-10-batches-bin']); // the temporary folder is gone
  assert.deepEqual(readdirSync(got).sort(), [
    'batches.meta.txt',
    'data_batch_1.bin',
    'data_batch_2.bin',
    'data_batch_3.bin',
    'data_batch_4.bin',
    'data_batch_5.bin',
    'test_batch.bin',
  ]);

  const tr = new Cifar(root);
  const te = new Cifar(root, { train: false });
  try {
    assert.equal(tr.length, 10);
    assert.deepEqual([...tr.labels!], trainLabels);
    assert.deepEqual(tr.classes, CLASSES);
    const px = tr.images.data();
    for (let i = 0; i < 10; i++) {
      for (const [c, off] of [
        [0, 0],
        [1, 1],
        [2, 2],
      ] as const) {
        const plane = px.subarray(i * 3072 + c * 1024, i * 3072 + (c + 1) * 1024);
        assert.ok(
          plane.every((v) => v === trainValue(i) + off),
          `image ${i} channel ${c}`,
        );
      }
    }
    assert.deepEqual([...te.labels!], [7, 0, 9]);
    assert.deepEqual(te.images.select(0, 2).flatten().slice(0, 2047, 2049).toArray(), [221, 222]); // G→B boundary of the third
  } finally {
    tr.dispose();
    te.dispose();
  }
});

test('a release already in place makes no request (root or the release folder itself)', async () => {
  const root = join(dir, 'ok');
  if (!existsSync(join(root, 'cifar-10-batches-bin')))
    await downloadCifar(root, 10, { url: `${base}/cifar-10-binary.tar.gz`, md5 });
  const n = requests.length;
  // Any request would fail (404), so success without one proves the network was not touched.
  assert.equal(await downloadCifar(root, 10, { url: `${base}/nothing-here` }), join(root, 'cifar-10-batches-bin'));
  assert.equal(
    await downloadCifar(join(root, 'cifar-10-batches-bin'), 10, { url: `${base}/nothing-here` }),
    join(root, 'cifar-10-batches-bin'),
  );
  assert.equal(requests.length, n);
});

test('a wrong MD5 is rejected naming the URL, expected and actual; nothing is left behind', async () => {
  const root = join(dir, 'bad-md5');
  const url = `${base}/cifar-10-binary.tar.gz`;
  await assert.rejects(downloadCifar(root, 10, { url, md5: '0'.repeat(32) }), (e: Error) => {
    assert.ok(e.message.includes(url), e.message);
    assert.match(e.message, /checksum mismatch: expected MD5 0{32}, got [0-9a-f]{32}/);
    assert.ok(e.message.includes(md5), e.message);
    assert.match(e.message, /may be offline/);
    assert.ok(e.message.includes(join(root, 'cifar-10-batches-bin', 'data_batch_1.bin')), e.message); // where to put it by hand
    return true;
  });
  assert.deepEqual(leftovers(root), []);
  // A custom URL is still checked against the official checksum unless md5 is null.
  await assert.rejects(downloadCifar(root, 10, { url }), /expected MD5 c32a1d4ab5d03f1284b67883e8d87530/);
  assert.deepEqual(leftovers(root), []);
  assert.equal(await downloadCifar(root, 10, { url, md5: null }), join(root, 'cifar-10-batches-bin'));
});

test('HTTP 404 and an unreachable server are clear errors', async () => {
  const root = join(dir, 'missing');
  const url = `${base}/cifar-10-binary-missing.tar.gz`;
  await assert.rejects(downloadCifar(root, 10, { url, md5 }), (e: Error) => {
    assert.match(
      e.message,
      /^CIFAR-10: downloading http:\/\/127\.0\.0\.1:\d+\/cifar-10-binary-missing\.tar\.gz failed: HTTP 404/,
    );
    assert.match(e.message, /may be offline/);
    return true;
  });
  assert.deepEqual(leftovers(root), []);
  // A closed port: refused at once, without leaving the machine.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(
    downloadCifar(root, 10, { url: `http://127.0.0.1:${port}/x.tar.gz`, md5 }),
    /failed: network error \(.*ECONNREFUSED.*\)\. The machine may be offline/,
  );
  assert.deepEqual(leftovers(root), []);
});
