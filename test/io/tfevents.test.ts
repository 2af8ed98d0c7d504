// Event files as an independent reader sees them: Python's google.protobuf on the .proto messages compiled by
// protoc, CRCs of every record checked, PNGs decoded by PIL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import sharp from 'sharp';
import { EventWriter, histogramOf, tfRecord } from '../../src/io/tfevents.js';
import { readEventFiles } from '../helpers/tfevents.js';
import { tmpDir } from '../helpers/pytorch.js';

test('scalars, a PNG, a histogram, text and a SessionLog START read back in Python', async () => {
  const dir = tmpDir();
  const w = new EventWriter(dir, { wallTime: 1_700_000_000.25 });
  assert.match(basename(w.path), /^events\.out\.tfevents\.1700000000\.[A-Za-z0-9_.-]+\.\d+\.\d+$/);
  const values = [0.1, 1 / 3, 12345.678, -2.5e-8];
  values.forEach((v, i) => w.scalar('train/loss', v, i + 1));
  w.scalar('train/loss', NaN, 9); // skipped: TensorBoard cannot plot it
  const png = await sharp({ create: { width: 7, height: 5, channels: 3, background: { r: 10, g: 200, b: 30 } } })
    .png()
    .toBuffer();
  w.image('img/grid', png, 7, 5, 3);
  const samples = Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3);
  w.histogram('h', histogramOf(samples, 20), 4);
  w.text('config', '# run\n`lr` = 0.06 — ünïcode', 0);
  w.sessionStart(5);
  w.flush();
  w.scalar('zero', 0, 6); // a default value, still written (oneof member)
  w.scalar('late', 7, 6); // after a flush: appended to the same file
  w.close();
  w.close(); // idempotent
  const [f] = readEventFiles([w.path]);
  const ev = f!.events;
  assert.equal(ev[0]!.file_version, 'brain.Event:2');
  assert.equal(ev[0]!.wall_time, 1_700_000_000.25);
  const scalars = ev.filter((e) => e.values?.[0]?.tag === 'train/loss');
  assert.deepEqual(
    scalars.map((e) => e.step),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    scalars.map((e) => e.values![0]!.value),
    values.map(Math.fround),
  );
  const img = ev.find((e) => e.values?.[0]?.kind === 'image')!;
  assert.deepEqual([img.step, img.values![0]!.width, img.values![0]!.height], [3, 7, 5]);
  const h = ev.find((e) => e.values?.[0]?.kind === 'histo')!.values![0]!;
  assert.equal(h.num, 1000);
  assert.equal(
    h.bucket!.reduce((a, b) => a + b, 0),
    1000,
  );
  assert.equal(h.bucket!.length, 20);
  assert.equal(h.min, Math.min(...samples));
  assert.equal(h.max, Math.max(...samples));
  assert.equal(h.bucket_limit!.at(-1), Math.max(...samples));
  const t = ev.find((e) => e.values?.[0]?.kind === 'tensor')!.values![0]!;
  assert.equal(t.plugin, 'text');
  assert.deepEqual(t.text, ['# run\n`lr` = 0.06 — ünïcode']);
  const s = ev.find((e) => e.session_log)!;
  assert.deepEqual([s.session_log, s.step], ['START', 5]);
  assert.deepEqual(ev.at(-2)!.values![0], { tag: 'zero', kind: 'simple_value', value: 0 });
  assert.equal(ev.at(-1)!.values![0]!.tag, 'late');
});

test('a flipped bit is a CRC error for the reader; a torn tail is a truncated record', () => {
  const dir = tmpDir();
  const w = new EventWriter(dir);
  w.scalar('a', 1, 1);
  w.close();
  const good = readFileSync(w.path);
  const bad = Buffer.from(good);
  bad[bad.length - 6]! ^= 0x10; // inside the last record's data
  writeFileSync(w.path, bad);
  assert.throws(() => readEventFiles([w.path]), /data CRC mismatch/);
  writeFileSync(w.path, good.subarray(0, good.length - 3));
  assert.throws(() => readEventFiles([w.path]), /truncated record/);
  // The framing of an empty record: 8 length bytes, 4 CRC bytes, no data, 4 CRC bytes.
  assert.equal(tfRecord(new Uint8Array(0)).length, 16);
});
