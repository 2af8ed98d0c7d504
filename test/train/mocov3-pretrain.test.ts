// MoCo v3 in the pre-training loop: the CLI runs the mocov3-cifar preset; LARS and AdamW runs resume step for step
// (optimizer state, per-iteration lr and --moco-m-cos momentum); the schedule's values; a tiny ViT steps, resumes
// and feeds the kNN monitor; bad combinations name their flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  iterationSchedule,
  mechanismOf,
  pretrain,
  readCheckpoint,
  resolveConfig,
  type ConfigOverrides,
  type PretrainSummary,
} from '../../src/train/index.js';
import { cosineMomentum, warmupCosineLr } from '../../src/optim/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { runCli } from '../helpers/cli.js';

interface Row {
  loss: number;
  lr: number;
  knnTop1?: number;
}

function rows(dir: string): Row[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Row)
    .filter((r) => r.knnTop1 === undefined);
}

// 64 images, batch 16: 4 steps an epoch, so 4 steps cross the warm-up (1 epoch) into the cosine.
const V3: ConfigOverrides = {
  preset: 'mocov3-cifar',
  width: 4,
  imageSize: 16,
  batchSize: 16,
  dim: 16,
  mlpDim: 32,
  epochs: 3,
  printFreq: 1000,
  threads: 2,
  seed: 5,
};

/** 4 steps (with `wholeOnly` settings, e.g. the kNN monitor, which trains nothing) vs 2 + resume + 2. */
async function resumeMatches(
  over: ConfigOverrides,
  wholeOnly: ConfigOverrides = {},
  data = 'synthetic:64',
): Promise<{ whole: string; halves: string; summary: PretrainSummary }> {
  const a = tmpDir();
  const b = tmpDir();
  const summary = await pretrain(resolveConfig(data, { ...over, ...wholeOnly, maxSteps: 4, out: a }), { quiet: true });
  await pretrain(resolveConfig(data, { ...over, maxSteps: 2, out: b }), { quiet: true });
  const ck = readCheckpoint(b);
  assert.deepEqual(ck.state, { epoch: 0, batch: 2, step: 2 });
  await pretrain(resolveConfig('', { maxSteps: 4 }, ck.config), { quiet: true, resume: ck });
  const [ra, rb] = [rows(a), rows(b)];
  assert.equal(ra.length, 4);
  assert.deepEqual(
    rb.map((r) => r.loss),
    ra.map((r) => r.loss),
    'losses of 2 + resume + 2 steps = 4 steps',
  );
  assert.deepEqual(
    rb.map((r) => r.lr),
    ra.map((r) => r.lr),
  );
  return { whole: a, halves: b, summary };
}

test('moco pretrain synthetic:64 --preset mocov3-cifar runs (CLI), with LARS state in its checkpoint', async () => {
  const out = tmpDir();
  const r = await runCli([
    'pretrain',
    'synthetic:64',
    '--preset',
    'mocov3-cifar',
    '--width',
    '4',
    '--batch-size',
    '16',
    '--max-steps',
    '3',
    '--threads',
    '2',
    '--quiet',
    '--out',
    out,
  ]).done;
  assert.equal(r.code, 0, r.err);
  const summary = JSON.parse(r.out.trim().split('\n').pop()!) as { steps: number; lastLoss: number };
  assert.equal(summary.steps, 3);
  assert.ok(Number.isFinite(summary.lastLoss));
  const ck = readCheckpoint(out);
  assert.equal(ck.config.mechanism, 'mocov3');
  assert.equal(ck.optimizerName, 'lars');
  assert.ok(ck.tensors.has('optimizer.mu.0'), 'LARS momentum buffers are saved as optimizer.mu.<i>');
  assert.ok([...ck.tensors.keys()].some((k) => k.startsWith('base_encoder.')) && ck.tensors.has('predictor.0.weight'));
  for (const t of ck.tensors.values()) t.dispose();
});

test('mocov3 + LARS: 2 steps + resume + 2 steps gives the same losses as 4 steps; lr and m follow the schedule', async () => {
  const { whole } = await resumeMatches(V3);
  const c = resolveConfig('synthetic:64', V3);
  assert.equal(c.optimizer, 'lars');
  assert.equal(c.lrScaling, 'linear');
  const expected = [0, 1, 2, 3].map((i) => iterationSchedule(c, 0, i, 4)!.lr);
  assert.deepEqual(
    rows(whole).map((r) => r.lr),
    expected,
  );
  assert.equal(expected[0], 0, 'the warm-up starts from 0, as adjust_learning_rate');
  assert.equal(expected[2], ((0.3 * 16) / 256) * 0.5);
});

test('mocov3 + AdamW: 2 steps + resume + 2 steps gives the same losses as 4 steps (moments and step counts restored)', async () => {
  const { halves } = await resumeMatches({ ...V3, optimizer: 'adamw', lr: 1.5e-4, wd: 0.1 });
  const ck = readCheckpoint(halves);
  assert.equal(ck.optimizerName, 'adamw');
  assert.ok(ck.tensors.has('optimizer.exp_avg.0') && ck.tensors.has('optimizer.exp_avg_sq.0'));
  assert.equal((ck.optimizerExtra as { steps: Record<string, number> }).steps['0'], 4);
  // Resuming with another optimizer is refused, naming both.
  await assert.rejects(
    pretrain(resolveConfig('', { maxSteps: 6, optimizer: 'lars' }, ck.config), { quiet: true, resume: ck }),
    /trained with --optimizer adamw, this one is set to --optimizer lars/,
  );
  for (const t of ck.tensors.values()) t.dispose();
});

test('MoCo v3 schedule: warm-up then half-cosine lr (base·batch/256) and the --moco-m-cos momentum at given iterations', () => {
  const c = resolveConfig('synthetic', {
    preset: 'mocov3-cifar',
    epochs: 10,
    warmupEpochs: 2,
    batchSize: 512,
    lr: 0.3,
    m: 0.99,
  });
  const base = (0.3 * 512) / 256;
  // 100 batches an epoch: iteration (epoch, batch) is the fractional epoch epoch + batch/100.
  const at = (e: number, b: number): { lr: number; m: number } => iterationSchedule(c, e, b, 100)!;
  assert.equal(at(0, 0).lr, 0);
  assert.ok(Math.abs(at(1, 0).lr - base / 2) < 1e-12, 'half way through the warm-up');
  assert.ok(Math.abs(at(2, 0).lr - base) < 1e-12, 'the end of the warm-up is the peak');
  assert.ok(Math.abs(at(6, 0).lr - base / 2) < 1e-12, 'half way through the cosine');
  assert.ok(Math.abs(at(3, 50).lr - warmupCosineLr(base, 3.5, 2, 10)) < 1e-15);
  assert.equal(at(0, 0).m, 0.99);
  assert.ok(Math.abs(at(5, 0).m - 0.995) < 1e-12, 'm half way between m0 and 1 at half the epochs');
  assert.ok(Math.abs(at(7, 25).m - cosineMomentum(0.99, 7.25, 10)) < 1e-15);
  // Without --moco-m-cos the momentum is constant; without linear scaling the base lr is --lr.
  const flat = resolveConfig('synthetic', {
    preset: 'mocov3-cifar',
    epochs: 10,
    warmupEpochs: 0,
    mocoMCos: false,
    lrScaling: 'none',
    lr: 0.3,
  });
  assert.deepEqual(iterationSchedule(flat, 0, 0, 100), { lr: 0.3, m: 0.99 });
  // v1/v2 set their lr once an epoch: no per-iteration schedule.
  assert.equal(iterationSchedule(resolveConfig('synthetic', { preset: 'cifar' }), 0, 0, 100), null);
});

test('mocov3 with a tiny ViT (vit_tiny, 1 block, patch 4, 32 px): steps, resumes step for step, and feeds the kNN monitor', async () => {
  const vit: ConfigOverrides = {
    preset: 'mocov3-vit-cifar',
    vitDepth: 1,
    dim: 16,
    mlpDim: 32,
    batchSize: 16,
    epochs: 2,
    printFreq: 1000,
    threads: 2,
    seed: 7,
  };
  const c = resolveConfig('synthetic:64', vit);
  assert.equal(c.arch, 'vit_tiny');
  assert.equal(c.optimizer, 'adamw');
  assert.equal(c.patchSize, 4);
  assert.equal(c.stopGradConv1, true);
  const { whole, summary } = await resumeMatches(vit, { knnEvery: 1, knnFeature: 'backbone' });
  assert.ok(
    summary.knnTop1 !== undefined && summary.knnTop1 >= 0 && summary.knnTop1 <= 100,
    'the kNN monitor reads the ViT features',
  );
  const ck = readCheckpoint(whole);
  assert.ok(ck.tensors.has('base_encoder.head.0.weight'), 'the projector is the ViT head');
  assert.ok(!ck.tensors.has('base_encoder.blocks.1.norm1.weight'), '--vit-depth 1');
  // The frozen patch projection (weight and bias) has no gradient, so no optimizer state; every other parameter does.
  const mech = mechanismOf(c, 64);
  const params = mech.trainableParameters().length;
  mech.dispose();
  assert.equal([...ck.tensors.keys()].filter((k) => k.startsWith('optimizer.exp_avg.')).length, params - 2);
  for (const t of ck.tensors.values()) t.dispose();
});

test('MoCo v3 settings: invalid combinations are refused naming the flags', () => {
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'cifar', optimizer: 'lars' }),
    /invalid --optimizer "lars": LARS and AdamW are MoCo v3's optimizers \(here --mechanism "moco" \(from preset cifar\)\)/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'mocov3-cifar', mechanism: 'moco' }),
    /invalid --optimizer "lars" \(from preset mocov3-cifar\)/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'cifar', arch: 'vit_small', cifarStem: false }),
    /invalid -a\/--arch "vit_small": a Vision Transformer is a MoCo v3 backbone/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'mocov3-cifar', stopGradConv1: true }),
    /invalid --stop-grad-conv1 true: freezes a ViT's patch projection; -a\/--arch "resnet18" \(from preset mocov3-cifar\) is not a ViT/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'mocov3-vit-cifar', patchSize: 5 }),
    /invalid --patch-size 5: must divide --image-size 32/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'cifar', mocoMCos: true }),
    /invalid --moco-m-cos true: the cosine momentum schedule is MoCo v3's/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'cifar', warmupEpochs: 5 }),
    /invalid --warmup-epochs 5: the per-iteration warm-up is MoCo v3's/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { preset: 'cifar', mechanism: 'mocov3' }),
    /invalid --bn-splits 8 \(from preset cifar\): MoCo v3 uses plain BN/,
  );
  // The presets themselves are valid, with the recipes' values.
  const r50 = resolveConfig('synthetic', { preset: 'mocov3' });
  assert.deepEqual(
    [r50.optimizer, r50.lr, r50.wd, r50.T, r50.batchSize, r50.warmupEpochs, r50.cropMin, r50.mlpDim, r50.dim, r50.m],
    ['lars', 0.6, 1e-6, 1.0, 4096, 10, 0.08, 4096, 256, 0.99],
  );
  for (const p of ['mocov3-vit-small', 'mocov3-vit-base']) {
    const v = resolveConfig('synthetic', { preset: p });
    assert.deepEqual(
      [v.optimizer, v.lr, v.wd, v.T, v.warmupEpochs, v.epochs, v.stopGradConv1, v.mocoMCos],
      ['adamw', 1.5e-4, 0.1, 0.2, 40, 300, true, true],
    );
  }
});
