// --online-probe: a linear classifier trained on each step's detached backbone features leaves the MoCo step's
// arithmetic alone (seeded losses and the checkpoint's MoCo tensors are a run without it's, a resume continues the
// probe exactly), learns on an easy labelled set, shows in metrics.jsonl, TensorBoard and the report, and is
// refused on unlabelled data and in multi-process runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { pretrain, readCheckpoint, readMetrics, resolveConfig, type StepMetrics } from '../../src/train/index.js';
import { eventFiles } from '../../src/train/run-log.js';
import { loadReportRun } from '../../src/views/report-data.js';
import { Rng } from '../../src/data/rng.js';
import type { DistributedTraining } from '../../src/dist/index.js';
import { readEventFiles, visibleScalars } from '../helpers/tfevents.js';
import { tmpDir } from '../helpers/pytorch.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ imageSize: 16, K: 128, printFreq: 2, knnEvery: 1 });

const stepRows = (rows: StepMetrics[]): StepMetrics[] => rows.filter((r) => r.knnTop1 === undefined);

/**
 * An easy labelled set in main_moco.py's layout: class `dark` (grey levels around 40) and `bright` (around 215),
 * with pixel noise, 16×16 PNGs; `perClass` training images a class and a quarter of that in val/.
 */
async function darkBright(perClass: number, seed = 0): Promise<string> {
  const root = tmpDir('moco-probe-data-');
  const rng = new Rng(seed, 'dark-bright');
  for (const [split, n] of [
    ['train', perClass],
    ['val', Math.max(2, perClass / 4)],
  ] as const) {
    for (const [cls, level] of [
      ['bright', 215],
      ['dark', 40],
    ] as const) {
      mkdirSync(join(root, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const px = Buffer.alloc(16 * 16 * 3);
        for (let j = 0; j < px.length; j++) px[j] = Math.max(0, Math.min(255, level + rng.uniform(-30, 30)));
        const png = await sharp(px, { raw: { width: 16, height: 16, channels: 3 } })
          .png()
          .toBuffer();
        writeFileSync(join(root, split, cls, `${i}.png`), png);
      }
    }
  }
  return root;
}

test('with --online-probe the seeded losses and the checkpoint MoCo tensors are those of a run without it; a resume continues the probe exactly; metrics, TensorBoard and the report show it', async () => {
  const a = tmpDir();
  const b = tmpDir();
  const plain = await pretrain(resolveConfig('synthetic:128', { ...TINY, out: a }), { quiet: true });
  const probed = await pretrain(resolveConfig('synthetic:128', { ...TINY, onlineProbe: true, out: b }), {
    quiet: true,
  });
  assert.equal(probed.steps, 8);
  const rowsA = readMetrics(a);
  const rowsB = readMetrics(b);
  assert.deepEqual(
    stepRows(rowsB).map((r) => r.loss),
    stepRows(rowsA).map((r) => r.loss),
  );
  assert.equal(probed.knnTop1, plain.knnTop1);
  // The MoCo part of the checkpoint (weights, queue, optimizer, RNG) is bit for bit the same; the probe is extra.*.
  const ckA = readCheckpoint(join(a, 'checkpoint_0000008.safetensors'));
  const ckB = readCheckpoint(join(b, 'checkpoint_0000008.safetensors'));
  const mocoKeys = [...ckB.tensors.keys()].filter((k) => !k.startsWith('extra.'));
  assert.deepEqual(mocoKeys.sort(), [...ckA.tensors.keys()].sort());
  for (const k of mocoKeys) assert.deepEqual(ckB.tensors.get(k)!.toArray(), ckA.tensors.get(k)!.toArray(), k);
  assert.deepEqual([...ckB.tensors.keys()].filter((k) => k.startsWith('extra.')).sort(), [
    'extra.online_probe.bias',
    'extra.online_probe.optimizer.momentum_buffer.0',
    'extra.online_probe.optimizer.momentum_buffer.1',
    'extra.online_probe.weight',
  ]);
  for (const ck of [ckA, ckB]) for (const t of ck.tensors.values()) t.dispose();
  assert.equal('onlineProbe' in ckA.config, false, 'a run without the probe records no onlineProbe');

  // metrics.jsonl: the running training top-1 on every --print-freq step row and each epoch's last; the test
  // split's top-1 on the kNN monitor's rows after the first step.
  const withOnline = stepRows(rowsB).filter((r) => r.onlineTop1 !== undefined);
  assert.deepEqual(
    withOnline.map((r) => r.step),
    [2, 4, 6, 8],
  );
  for (const r of withOnline) assert.ok(r.onlineTop1! >= 0 && r.onlineTop1! <= 100, `${r.onlineTop1}`);
  const evals = rowsB.filter((r) => r.knnTop1 !== undefined);
  assert.deepEqual(
    evals.map((r) => [r.step, r.onlineValTop1 !== undefined]),
    [
      [0, false],
      [4, true],
      [8, true],
    ],
  );
  assert.equal(probed.onlineValTop1, evals.at(-1)!.onlineValTop1);
  assert.equal(
    rowsA.some((r) => r.onlineTop1 !== undefined || r.onlineValTop1 !== undefined),
    false,
  );

  // TensorBoard (read by Python's protobuf): eval/online_top1 and eval/online_val_top1 at the rows' steps.
  const scalars = visibleScalars(readEventFiles(eventFiles(b)));
  for (const r of withOnline) assert.equal(scalars.get(`eval/online_top1@${r.step}`), Math.fround(r.onlineTop1!));
  for (const r of evals.slice(1))
    assert.equal(scalars.get(`eval/online_val_top1@${r.step}`), Math.fround(r.onlineValTop1!));
  assert.equal(
    [...visibleScalars(readEventFiles(eventFiles(a))).keys()].some((k) => k.includes('online')),
    false,
  );

  // The report's data.
  const rep = loadReportRun(b);
  assert.deepEqual(
    rep.steps.onlineTop1.filter((v) => v !== null),
    withOnline.map((r) => r.onlineTop1),
  );
  assert.deepEqual(rep.knn.onlineValTop1, [null, evals[1]!.onlineValTop1, evals[2]!.onlineValTop1]);
  assert.equal(rep.summary.onlineTop1, evals[2]!.onlineValTop1);
  assert.equal(loadReportRun(a).summary.onlineTop1, null);

  // Resumed from the epoch-0 checkpoint: the MoCo losses and the probe's figures are the uninterrupted run's.
  const ck = readCheckpoint(join(b, 'checkpoint_0000004.safetensors'));
  await pretrain(resolveConfig('', {}, ck.config), { quiet: true, resume: ck });
  const resumed = readMetrics(b);
  assert.deepEqual(
    stepRows(resumed).map((r) => [r.loss, r.onlineTop1]),
    stepRows(rowsB).map((r) => [r.loss, r.onlineTop1]),
  );
  assert.deepEqual(
    resumed.filter((r) => r.knnTop1 !== undefined).map((r) => r.onlineValTop1),
    evals.map((r) => r.onlineValTop1),
  );
});

test('the online probe learns an easy labelled set: its training top-1 rises', async () => {
  const data = await darkBright(64);
  const seeds = (process.env.PROBE_SEEDS ?? '1').split(',').map(Number);
  const bad: string[] = [];
  for (const seed of seeds) {
    const out = tmpDir();
    await pretrain(
      resolveConfig(data, { ...TINY, knnEvery: 0, epochs: 5, printFreq: 1, seed, onlineProbe: true, out }),
      { quiet: true },
    );
    const figures = stepRows(readMetrics(out)).map((r) => r.onlineTop1!);
    const first = figures[0]!;
    const last = figures.at(-1)!;
    if (process.env.PROBE_SEEDS)
      console.log(`seed ${seed}: online top-1 ${figures.map((f) => f.toFixed(1)).join(' ')}`);
    // The first figure is the untrained probe on one batch (chance, 50%); the last the fifth epoch's running top-1.
    if (!(last >= 85 && last - first >= 25)) bad.push(`seed ${seed}: ${first} → ${last}`);
  }
  assert.deepEqual(bad, []);
});

test('--online-probe is refused on unlabelled data and in multi-process runs', async () => {
  const flat = tmpDir('moco-probe-flat-');
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 9, g: 9, b: 9 } } })
    .png()
    .toBuffer();
  for (let i = 0; i < 40; i++) writeFileSync(join(flat, `${i}.png`), png);
  await assert.rejects(
    pretrain(resolveConfig(flat, { ...TINY, knnEvery: 0, onlineProbe: true, out: tmpDir() }), { quiet: true }),
    (e: Error) => e.message.includes('--online-probe') && e.message.includes(flat) && /no(ne| class)/.test(e.message),
  );
  const dist = { isMain: true, worldSize: 2, rank: 0 } as unknown as DistributedTraining;
  await assert.rejects(
    pretrain(resolveConfig('synthetic:64', { ...TINY, onlineProbe: true, out: tmpDir() }), { quiet: true, dist }),
    /--online-probe.*--nproc-per-node/,
  );
});
