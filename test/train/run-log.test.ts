// A run's TensorBoard event files, read by an independent reader (Python's google.protobuf, see
// helpers/tfevents.ts), agree with its metrics.jsonl value for value: a fresh run, a run resumed from an older
// checkpoint (its second file's SessionLog START hides the first file's later steps) and one stopped by SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pretrain, readCheckpoint, readMetrics, resolveConfig, type StepMetrics } from '../../src/train/index.js';
import { eventFiles, readRunInfo } from '../../src/train/run-log.js';
import { renderNeighbourGrid } from '../../src/views/neighbour-grid.js';
import { readEventFiles, visibleScalars, type ReadFile } from '../helpers/tfevents.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ printFreq: 3, knnEvery: 1 });

/** The scalars a metrics.jsonl row stands for, as float32 (simple_value's type), keyed `tag@step`. */
function expectedScalars(rows: StepMetrics[]): Map<string, number> {
  const m = new Map<string, number>();
  const put = (tag: string, v: number | undefined | null, step: number): void => {
    if (typeof v === 'number' && Number.isFinite(v)) m.set(`${tag}@${step}`, Math.fround(v));
  };
  for (const r of rows) {
    if (r.knnTop1 !== undefined) {
      put('eval/knn_top1', r.knnTop1, r.step);
      continue;
    }
    put('train/loss', r.loss, r.step);
    put('train/lr', r.lr, r.step);
    put('train/acc1', r.acc1, r.step);
    put('train/acc5', r.acc5, r.step);
    put('perf/images_per_s', r.imagesPerSec, r.step);
    put('perf/data_ms', r.dataMs, r.step);
    put('perf/step_ms', r.stepMs, r.step);
    put('embed/std', r.embedStd, r.step);
  }
  return m;
}

/**
 * `minScalars`: a run stopped by SIGTERM at its third metrics row may hold just the random encoder's kNN row and two
 * step rows (1 + 2·8 scalars).
 */
function checkRun(dir: string, opts: { files: number; resumed?: boolean; minScalars?: number }): ReadFile[] {
  const files = readEventFiles(eventFiles(dir));
  assert.equal(files.length, opts.files);
  for (const f of files) assert.equal(f.events[0]!.file_version, 'brain.Event:2', f.path);
  const rows = readMetrics(dir);
  const want = expectedScalars(rows);
  const got = visibleScalars(files);
  assert.ok(want.size >= (opts.minScalars ?? 21), `${want.size} scalars`);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [k, v] of want) assert.equal(got.get(k), v, k);
  // Every step row carries the new metrics.
  for (const r of rows.filter((x) => x.knnTop1 === undefined)) {
    for (const k of ['acc1', 'acc5', 'dataMs', 'stepMs', 'embedStd'] as const)
      assert.equal(typeof r[k], 'number', `step ${r.step} ${k}`);
    assert.ok(r.acc1! <= r.acc5! && r.acc5! <= 100, `acc1 ${r.acc1} acc5 ${r.acc5}`);
    assert.ok(r.embedStd! > 0 && r.embedStd! < 1, `embed/std ${r.embedStd}`);
  }
  const tags = new Set(
    files.flatMap((f) => f.events.flatMap((e) => (e.values ?? []).map((v) => `${v.kind}:${v.tag}`))),
  );
  for (const t of ['histo:train/l_pos', 'histo:train/l_neg', 'image:eval/knn_neighbours'])
    assert.ok(tags.has(t), `${t} in ${[...tags].join(' ')}`);
  if (!opts.resumed) {
    for (const t of ['image:augment/preview', 'tensor:config']) assert.ok(tags.has(t), t);
    const text = files[0]!.events.find((e) => e.values?.[0]?.tag === 'config')!.values![0]!.text![0]!;
    assert.deepEqual(
      JSON.parse(text.replace(/^```json\n|\n```$/g, '')),
      JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')),
    );
  }
  return files;
}

test(
  'a fresh run and a run resumed from an older checkpoint: the event files agree with metrics.jsonl',
  { timeout: 300_000 },
  async () => {
    const dir = tmpDir();
    const s = await pretrain(resolveConfig('synthetic:128', { ...TINY, out: dir }), {
      quiet: true,
      neighbourGrid: renderNeighbourGrid,
    });
    assert.equal(s.steps, 8);
    checkRun(dir, { files: 1 });
    const info = readRunInfo(dir)!;
    assert.equal(info.state, 'finished');
    assert.equal(info.steps, 8);
    // Resume from the epoch-1 checkpoint (step 4): the first file's steps 5..8 are superseded by the second's.
    const ck = readCheckpoint(join(dir, 'checkpoint_0000004.safetensors'));
    const r = await pretrain(resolveConfig('synthetic:128', {}, ck.config), { quiet: true, resume: ck });
    assert.equal(r.steps, 8);
    const files = checkRun(dir, { files: 2, resumed: true });
    const start = files[1]!.events.find((e) => e.session_log);
    assert.deepEqual([start?.session_log, start?.step], ['START', 5]);
    // Without the purge the first file's steps 5..8 would show twice.
    assert.throws(
      () => visibleScalars(files.map((f) => ({ ...f, events: f.events.filter((e) => !e.session_log) }))),
      /written twice/,
    );
    assert.deepEqual([readRunInfo(dir)!.state, readRunInfo(dir)!.sessions], ['finished', 2]);
  },
);

test('a run stopped by SIGTERM flushes its events; its resumption continues them', { timeout: 300_000 }, async () => {
  const dir = tmpDir();
  const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  const args = [
    'pretrain',
    'synthetic:256',
    '--preset',
    'cifar',
    '--width',
    '8',
    '--batch-size',
    '32',
    '--moco-k',
    '256',
    '--bn-splits',
    '4',
    '--epochs',
    '2',
    '--threads',
    '2',
    '--seed',
    '5',
    '--print-freq',
    '2',
    '--knn-every',
    '1',
    '--quiet',
    '--out',
    dir,
  ];
  const proc = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const done = new Promise<number | null>((resolve) => proc.on('close', resolve));
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const p = join(dir, 'metrics.jsonl');
      if (existsSync(p) && readFileSync(p, 'utf8').split('\n').filter(Boolean).length >= 3) {
        clearInterval(timer);
        proc.kill('SIGTERM');
        resolve();
      }
    }, 20);
  });
  assert.equal(await done, 143, err);
  const info = readRunInfo(dir)!;
  assert.deepEqual([info.state, info.reason], ['interrupted', 'SIGTERM']);
  assert.ok(info.steps >= 2 && info.steps < 16, `stopped at ${info.steps}`);
  checkRun(dir, { files: 1, minScalars: 17 });
  const resumed = await pretrain(resolveConfig('synthetic:256', {}, readCheckpoint(dir).config), {
    quiet: true,
    resume: readCheckpoint(dir),
  });
  assert.equal(resumed.steps, 16);
  checkRun(dir, { files: 2, resumed: true });
});
