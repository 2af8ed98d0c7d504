// The pre-training loop: resume equivalence, SIGTERM then resume, guards, and that MoCo learns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pretrain, readCheckpoint, resolveConfig, type ConfigOverrides } from '../../src/train/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { runCli } from '../helpers/cli.js';
import { CHECKSUM_KEY } from '../../src/io/safetensors.js';
import { checkpointName } from '../../src/train/checkpoint.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ epochs: 3 });

function losses(dir: string): number[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { loss: number; knnTop1?: number })
    .filter((r) => r.knnTop1 === undefined)
    .map((r) => r.loss);
}

test('2 steps + resume + 2 steps gives the same losses as 4 steps', async () => {
  const a = tmpDir();
  const b = tmpDir();
  const whole = await pretrain(resolveConfig('synthetic:128', { ...TINY, maxSteps: 4, out: a }), { quiet: true });
  assert.equal(whole.steps, 4);
  const half = await pretrain(resolveConfig('synthetic:128', { ...TINY, maxSteps: 2, out: b }), { quiet: true });
  assert.equal(half.steps, 2);
  const ck = readCheckpoint(b);
  assert.deepEqual(ck.state, { epoch: 0, batch: 2, step: 2 });
  const rest = await pretrain(resolveConfig('synthetic:128', { maxSteps: 4 }, ck.config), { quiet: true, resume: ck });
  assert.equal(rest.steps, 4);
  assert.deepEqual(losses(b), losses(a));
  // The epoch boundary (4 batches of 32 in 128 images) was crossed by both runs at the same step.
  assert.deepEqual(readCheckpoint(a).state, { epoch: 1, batch: 0, step: 4 });
});

test('a step that ends an epoch and is a --save-every-steps step is checkpointed once', async () => {
  // 128 images in batches of 32: 4 steps an epoch; --save-every-steps 2 saves steps 2, 4 and 6, and step 4 ends
  // the first epoch. Its file is written by the epoch end only (not by the step save first and again after).
  const out = tmpDir();
  const ck4 = join(out, checkpointName(4));
  let atStep: number | null | undefined;
  let atEpochEnd: number | undefined;
  const watch = {
    between: (_ctx: unknown, e: { step: number }): void => {
      if (e.step === 4) atStep = existsSync(ck4) ? statSync(ck4).ino : null;
    },
    epochEnd: (_ctx: unknown, e: { epoch: number }): void => {
      if (e.epoch === 0) atEpochEnd = statSync(ck4).ino;
    },
  };
  const s = await pretrain(
    resolveConfig('synthetic:128', { ...TINY, epochs: 2, saveEverySteps: 2, keepCheckpoints: 5, out }),
    { quiet: true, observers: [watch] },
  );
  assert.equal(s.steps, 8);
  assert.notEqual(atStep, undefined, 'the loop went on after step 4');
  assert.ok(atStep === null || atStep === atEpochEnd, 'step 4 was written twice (the step save, then the epoch end)');
  assert.deepEqual(
    readdirSync(out)
      .filter((f) => f.startsWith('checkpoint_'))
      .sort(),
    [2, 4, 6, 8].map(checkpointName),
  );
  // The one file of step 4 records the epoch as done.
  const ck = readCheckpoint(ck4);
  for (const t of ck.tensors.values()) t.dispose();
  assert.deepEqual(ck.state, { epoch: 1, batch: 0, step: 4 });
});

test('a seeded run is bit-reproducible: the same config twice gives identical losses and weights', async () => {
  // What README and docs/runs.md promise: on one machine, with the same --seed and --threads, every loss and every tensor of the
  // checkpoint (model, queue, momentum buffers, RNG) is identical, bit for bit.
  const runs = [tmpDir(), tmpDir()];
  for (const out of runs)
    await pretrain(resolveConfig('synthetic:128', { ...TINY, maxSteps: 5, out }), { quiet: true });
  assert.deepEqual(losses(runs[1]!), losses(runs[0]!));
  // The SHA-256 of all tensor bytes that saveSafetensors writes into the header (loadSafetensors checks it).
  const digest = (dir: string): string | undefined => {
    const b = readFileSync(join(dir, checkpointName(5)));
    const header = JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString('utf8')) as {
      __metadata__?: Record<string, string>;
    };
    return header.__metadata__?.[CHECKSUM_KEY];
  };
  assert.ok(digest(runs[0]!), 'checkpoint carries a tensor checksum');
  assert.equal(digest(runs[1]!), digest(runs[0]!));
  // A different seed is a different run (the test can fail).
  const other = tmpDir();
  await pretrain(resolveConfig('synthetic:128', { ...TINY, seed: 4, maxSteps: 5, out: other }), { quiet: true });
  assert.notDeepEqual(losses(other), losses(runs[0]!));
});

const CLI_TINY = [
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
  '--quiet',
];

test('SIGTERM mid-epoch saves a checkpoint and exits 143; resuming reproduces the uninterrupted losses', async () => {
  const ref = tmpDir();
  const r0 = await runCli(['pretrain', 'synthetic:256', ...CLI_TINY, '--max-steps', '6', '--out', ref]).done;
  assert.equal(r0.code, 0, r0.err);
  const dir = tmpDir();
  const run = runCli(['pretrain', 'synthetic:256', ...CLI_TINY, '--max-steps', '6', '--out', dir]);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const p = join(dir, 'metrics.jsonl');
      if (existsSync(p) && readFileSync(p, 'utf8').split('\n').filter(Boolean).length >= 2) {
        clearInterval(timer);
        run.proc.kill('SIGTERM');
        resolve();
      }
    }, 20);
  });
  const r1 = await run.done;
  // The shell's status of a SIGTERM (128 + 15), after the checkpoint was saved.
  assert.equal(r1.code, 143, r1.err);
  const summary = JSON.parse(r1.out.trim().split('\n').pop()!) as { interrupted?: string; steps: number };
  assert.equal(summary.interrupted, 'SIGTERM');
  assert.ok(summary.steps >= 2 && summary.steps < 6, `stopped after ${summary.steps} steps`);
  const r2 = await runCli(['pretrain', 'synthetic:256', '--resume', dir, '--quiet']).done;
  assert.equal(r2.code, 0, r2.err);
  assert.deepEqual(losses(dir), losses(ref));
  assert.ok(readdirSync(dir).some((f) => /^checkpoint_0000006\.safetensors$/.test(f)));
});

test('--resume DIR needs no data argument (the run records it), refuses other data, and says when the run is finished', async () => {
  const dir = tmpDir();
  const tiny = [
    '--preset',
    'cifar',
    '--width',
    '4',
    '--image-size',
    '16',
    '--batch-size',
    '32',
    '--moco-k',
    '64',
    '--bn-splits',
    '4',
    '--threads',
    '1',
    '--quiet',
  ];
  const r0 = await runCli(['pretrain', 'synthetic:64', ...tiny, '--epochs', '1', '--out', dir]).done;
  assert.equal(r0.code, 0, r0.err);
  const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');

  // Finished: said so on stderr, with the run's own figures (no zeros, no null loss), and nothing rewritten.
  const r1 = await runCli(['pretrain', '--resume', dir, '--quiet']).done;
  assert.equal(r1.code, 0, r1.err);
  const said = `moco pretrain: ${dir} is already finished: epoch 1 of 1, step 2 (checkpoint ${join(dir, 'checkpoint_0000002.safetensors')}); nothing was trained. To train it further, resume with a larger --epochs, e.g. moco pretrain --resume ${dir} --epochs 2`;
  assert.ok(r1.err.includes(said), r1.err);
  const s1 = JSON.parse(r1.out.trim().split('\n').pop()!) as {
    alreadyFinished?: boolean;
    steps: number;
    lastLoss: number | null;
    imagesPerSec: number | null;
  };
  assert.equal(s1.alreadyFinished, true);
  assert.equal(s1.steps, 2);
  assert.ok(typeof s1.lastLoss === 'number' && s1.lastLoss > 0, `lastLoss ${s1.lastLoss}`);
  assert.ok(typeof s1.imagesPerSec === 'number' && s1.imagesPerSec > 0, `imagesPerSec ${s1.imagesPerSec}`);
  assert.equal(readFileSync(join(dir, 'metrics.jsonl'), 'utf8'), metrics, 'the finished run is left as it was');

  // Other data than the run's is refused, naming both.
  const r2 = await runCli(['pretrain', 'synthetic:32', '--resume', dir, '--epochs', '2', '--quiet']).done;
  assert.equal(r2.code, 1);
  assert.match(
    r2.err,
    /the data argument 'synthetic:32' is not the resumed run's data 'synthetic:64'.*leave the data argument out/,
  );
  // The same data may be given; a larger --epochs trains on.
  const r3 = await runCli(['pretrain', 'synthetic:64', '--resume', dir, '--epochs', '2', '--quiet']).done;
  assert.equal(r3.code, 0, r3.err);
  const s3 = JSON.parse(r3.out.trim().split('\n').pop()!) as { alreadyFinished?: boolean; steps: number };
  assert.deepEqual([s3.alreadyFinished, s3.steps], [undefined, 4]);

  // Neither data nor --resume: one line saying both ways, not the whole help.
  const r4 = await runCli(['pretrain', '--quiet']).done;
  assert.equal(r4.code, 1);
  assert.match(
    r4.err,
    /missing the data argument: moco pretrain DATA .*; to continue a run, moco pretrain --resume DIR/,
  );
  assert.ok(!r4.err.includes('Options:'), r4.err);
});

test('invalid settings are refused before any work, naming the flag', async () => {
  const bad: [ConfigOverrides, RegExp][] = [
    [
      { K: 16 },
      /invalid --moco-k 16: must be at least the keys enqueued per step \(--batch-size 32 = 32\); pass --moco-k 32 or more/,
    ],
    [{ m: 1 }, /invalid --moco-m 1: a number in \[0, 1\)/],
    [{ T: 0 }, /invalid --moco-t 0: a number > 0/],
    [{ arch: 'vgg' }, /invalid -a\/--arch "vgg": one of resnet18, resnet34, resnet50, resnet101/],
    [{ bnSplits: 5 }, /invalid --bn-splits 5: must divide --batch-size 32; pass --bn-splits 1, 2, 4, 8, 16 or 32/],
  ];
  for (const [o, re] of bad) assert.throws(() => resolveConfig('synthetic', { ...TINY, ...o }), re);
  // A value the user never typed names its source and the values that would work.
  assert.throws(
    () => resolveConfig('photos', { batchSize: 4 }),
    /invalid --bn-splits 8 \(from preset mocov1\): must divide --batch-size 4; pass --bn-splits 1, 2 or 4/,
  );
  assert.throws(
    () => resolveConfig('photos', { preset: 'cifar', batchSize: 8192, bnSplits: 1 }),
    /invalid --moco-k 4096 \(from preset cifar\): must be at least .*\(--batch-size 8192 = 8192\); pass --moco-k 8192 or more/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'simclr' }),
    /unknown --preset 'simclr'; valid: mocov1, mocov2, cifar/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { config: '/nonexistent.yaml' }),
    /--config \/nonexistent\.yaml: cannot read/,
  );
  await assert.rejects(
    pretrain(resolveConfig('/no/such/dir', { ...TINY, out: tmpDir() }), { quiet: true }),
    /data '\/no\/such\/dir' not found/,
  );
  const r = await runCli(['pretrain', 'synthetic', '--moco-m', 'abc']).done;
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--moco-m expects a number, got 'abc'/);
});

test('a NaN loss stops the run and names the step and the last checkpoint', async () => {
  const out = tmpDir();
  await assert.rejects(
    pretrain(resolveConfig('synthetic:128', { ...TINY, lr: 1e30, maxSteps: 20, out }), { quiet: true }),
    /loss is (NaN|Infinity|-Infinity) at step \d+ \(epoch \d\); stopping\. Last good checkpoint: .*Try a lower --lr/,
  );
});

test(
  "MoCo learns: README's first command (seed 0, 2 threads) lifts kNN accuracy ≥ 15 points above the random encoder",
  { timeout: 600_000 },
  async () => {
    // README's first command: a ResNet-18 of width 8 on 16-px views, ~800 steps in about a minute and a half on two
    // cores. The kNN monitor measures the freshly initialised encoder first (knnTop1Init) and the trained one last.
    const over: ConfigOverrides = {
      preset: 'cifar',
      width: 8,
      imageSize: 16,
      batchSize: 128,
      K: 1024,
      symmetric: true,
      cropMin: 0.3,
      epochs: 26,
      threads: 2,
      seed: 0,
      knnEvery: 1000,
      knnFeature: 'backbone',
      printFreq: 1000,
    };
    const summary = await pretrain(resolveConfig('synthetic:4000', { ...over, out: tmpDir() }), { quiet: true });
    assert.equal(summary.steps, 26 * 31);
    assert.ok(summary.knnTop1Init !== undefined && summary.knnTop1 !== undefined);
    assert.ok(
      summary.knnTop1! >= summary.knnTop1Init! + 15,
      `kNN ${summary.knnTop1Init!.toFixed(1)}% at init → ${summary.knnTop1!.toFixed(1)}% after ${summary.steps} steps`,
    );
  },
);
