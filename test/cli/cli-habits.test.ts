// What people expect of a command line: --version, a short hint after a mistyped flag, one error prefix, the exit
// status of an interrupted run, a readable summary line, and warnings about settings that quietly misbehave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';
import { runCli } from '../helpers/cli.js';
import { Progress } from '../../src/train/progress.js';

const TINY = [
  '--preset',
  'cifar',
  '--width',
  '4',
  '--image-size',
  '16',
  '--batch-size',
  '32',
  '--bn-splits',
  '4',
  '--threads',
  '1',
  '--print-freq',
  '1000',
];

test('moco --version prints the package version', async () => {
  const r = await runCli(['--version']).done;
  assert.equal(r.code, 0, r.err);
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
  assert.equal(r.out.trim(), pkg.version);
});

test("a mistyped or malformed flag: the error and one hint line (a close flag, the command's --help), not the whole help", async () => {
  const lines = (s: string): string[] => s.trimEnd().split('\n');
  const typo = await runCli(['pretrain', 'synthetic', '--epoch', '3']).done;
  assert.equal(typo.code, 1);
  assert.deepEqual(lines(typo.err), [
    "error: unknown option '--epoch'",
    'Did you mean --epochs? See moco pretrain --help',
  ]);
  // No flag close to it: the pointer to the help alone.
  const far = await runCli(['pretrain', 'synthetic', '--zzzz']).done;
  assert.deepEqual(lines(far.err), ["error: unknown option '--zzzz'", 'See moco pretrain --help']);
  // A value the flag's parser refuses, in a nested command.
  const bad = await runCli(['pretrain', 'synthetic', '--epochs', 'x']).done;
  assert.equal(bad.code, 1);
  assert.deepEqual(lines(bad.err), [
    "error: option '--epochs <n>' argument 'x' is invalid. --epochs expects an integer, got 'x'",
    'See moco pretrain --help',
  ]);
  const sub = await runCli(['cache', 'ls', '--jsn']).done;
  assert.deepEqual(lines(sub.err), ["error: unknown option '--jsn'", 'Did you mean --json? See moco cache ls --help']);
  const cmd = await runCli(['pretrian']).done;
  assert.deepEqual(lines(cmd.err), ["error: unknown command 'pretrian'", 'Did you mean pretrain? See moco --help']);
});

test('an error that names its command is not prefixed a second time', async () => {
  const r = await runCli(['sweep', 'synthetic', '--out', tmpDir()]).done;
  assert.equal(r.code, 1);
  assert.match(r.err, /^moco sweep: give the grid either as --grid/);
  assert.ok(!r.err.includes('moco: moco'), r.err);
});

test('pretrain warns at the start when the queue (--moco-k) is larger than the dataset', async () => {
  // --moco-k 4096 is the cifar preset's; synthetic:224 has 224 images.
  const r = await runCli(['pretrain', 'synthetic:224', ...TINY, '--max-steps', '1', '--out', tmpDir()]).done;
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.err,
    /warning: --moco-k 4096 is larger than the dataset synthetic:224 \(224 training images\).*pass --moco-k 224 or less/,
  );
  // A queue that fits the dataset: no warning.
  const ok = await runCli([
    'pretrain',
    'synthetic:224',
    ...TINY,
    '--moco-k',
    '128',
    '--max-steps',
    '1',
    '--out',
    tmpDir(),
  ]).done;
  assert.equal(ok.code, 0, ok.err);
  assert.ok(!ok.err.includes('--moco-k'), ok.err);
});

test('the summary line of pretrain rounds fractions to 4 significant digits and keeps integers', async () => {
  // 224 images in batches of 32: 7 steps an epoch, so 3 steps are 3/7 = 0.428571… epochs.
  const r = await runCli([
    'pretrain',
    'synthetic:224',
    ...TINY,
    '--moco-k',
    '128',
    '--max-steps',
    '3',
    '--quiet',
    '--out',
    tmpDir(),
  ]).done;
  assert.equal(r.code, 0, r.err);
  const line = r.out.trim().split('\n').pop()!;
  const s = JSON.parse(line) as {
    epochs: number;
    steps: number;
    lastLoss: number;
    imagesPerSec: number;
    peakRssMB: number;
  };
  assert.equal(s.epochs, 0.4286, line);
  assert.equal(s.steps, 3);
  for (const k of ['lastLoss', 'imagesPerSec', 'peakRssMB'] as const) {
    assert.ok(Number.isFinite(s[k]), `${k} in ${line}`);
    assert.equal(Number(s[k].toPrecision(4)), s[k], `${k} has more than 4 significant digits: ${line}`);
  }
});

test(
  'SIGINT during pretrain saves the checkpoint, says how to continue, and exits 130',
  { timeout: 120_000 },
  async () => {
    const dir = join(tmpDir(), 'run');
    const run = runCli(['pretrain', 'synthetic:256', ...TINY, '--moco-k', '256', '--epochs', '20', '--out', dir]);
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const p = join(dir, 'metrics.jsonl');
        if (existsSync(p) && readFileSync(p, 'utf8').split('\n').filter(Boolean).length >= 2) {
          clearInterval(timer);
          run.proc.kill('SIGINT');
          resolve();
        }
      }, 20);
    });
    const r = await run.done;
    assert.equal(r.code, 130, r.err);
    const s = JSON.parse(r.out.trim().split('\n').pop()!) as { interrupted?: string; checkpoint: string };
    assert.equal(s.interrupted, 'SIGINT');
    assert.ok(existsSync(s.checkpoint), s.checkpoint);
    assert.ok(r.err.includes(`SIGINT: saved ${s.checkpoint}; continue with: moco pretrain --resume ${dir}`), r.err);
  },
);

test('the terminal progress bar shows values (or blanks), never its {placeholders}, after a line written above it and at the end', () => {
  const stderr = process.stderr as NodeJS.WriteStream & { isTTY: boolean };
  const wasTTY = stderr.isTTY;
  const write = stderr.write;
  let seen = '';
  stderr.isTTY = true;
  stderr.write = ((chunk: string | Uint8Array): boolean => {
    seen += chunk.toString();
    return true;
  }) as typeof stderr.write;
  try {
    const p = new Progress(8, 0, 10);
    p.log('before training: kNN top-1 10.00% (random encoder)');
    p.update(4, { epoch: 0, loss: 6.5, lr: 0.06, imagesPerSec: 100 });
    // An epoch's end: a kNN line above the bar, then the bar again until the next step; then the run ends.
    p.log('epoch 0: kNN top-1 12.00%');
    p.stop();
  } finally {
    stderr.write = write;
    stderr.isTTY = wasTTY;
  }
  assert.ok(seen.includes('epoch 0 loss 6.5000 lr 0.0600 100.0 img/s'), seen);
  assert.doesNotMatch(seen, /\{(epoch|loss|lr|ips)\}/);
});
