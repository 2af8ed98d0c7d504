// The three mechanisms in the shared pre-training loop: the memory bank resumes exactly (its bank is a
// checkpoint tensor), each mechanism learns on the synthetic shapes, and bad combinations name their flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pretrain, readCheckpoint, resolveConfig, type ConfigOverrides } from '../../src/train/index.js';
import { tmpDir } from '../helpers/pytorch.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ width: 4, imageSize: 16, K: 64, epochs: 3 });

function losses(dir: string): number[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { loss: number; knnTop1?: number })
    .filter((r) => r.knnTop1 === undefined)
    .map((r) => r.loss);
}

test('memory bank: 2 steps + resume + 2 steps gives the same losses and bank as 4 steps', async () => {
  const over: ConfigOverrides = { ...TINY, mechanism: 'memory-bank', bankSampling: 'per-sample' };
  const a = tmpDir();
  const b = tmpDir();
  await pretrain(resolveConfig('synthetic:96', { ...over, maxSteps: 4, out: a }), { quiet: true });
  await pretrain(resolveConfig('synthetic:96', { ...over, maxSteps: 2, out: b }), { quiet: true });
  const ck = readCheckpoint(b);
  assert.deepEqual(ck.tensors.get('bank')!.shape, [96, 128]);
  await pretrain(resolveConfig('synthetic:96', { maxSteps: 4 }, ck.config), { quiet: true, resume: ck });
  assert.deepEqual(losses(b), losses(a));
  assert.equal(losses(a).length, 4);
  const [ba, bb] = [readCheckpoint(a).tensors.get('bank')!, readCheckpoint(b).tensors.get('bank')!];
  assert.ok(ba.eq(bb).all().item(), 'the banks after 4 steps are identical');
  // The bank changed during training (the test can fail): rows of trained images moved from their random start.
  const fresh = tmpDir();
  await pretrain(resolveConfig('synthetic:96', { ...over, maxSteps: 1, out: fresh }), { quiet: true });
  assert.ok(!readCheckpoint(fresh).tensors.get('bank')!.eq(ba).all().item());
});

test('mechanism flags: invalid combinations are refused naming the flag', () => {
  assert.throws(
    () => resolveConfig('synthetic', { ...TINY, mechanism: 'simclr' as never }),
    /invalid --mechanism "simclr": one of moco, end-to-end, memory-bank, mocov3/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { ...TINY, loss: 'ntxent' }),
    /invalid --loss "ntxent": NT-Xent is a loss of --mechanism end-to-end \(here --mechanism "moco" \(from preset cifar\)\)/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { ...TINY, mechanism: 'memory-bank', symmetric: true }),
    /invalid --symmetric true: the symmetric loss is MoCo's/,
  );
  assert.throws(
    () => resolveConfig('synthetic', { ...TINY, mechanism: 'memory-bank', bankMomentum: 1 }),
    /invalid --bank-momentum 1: a number in \[0, 1\)/,
  );
  // End-to-end has no queue: K does not bound the batch; its lr follows main_moco.py's linear scaling by default.
  const e2e = resolveConfig('synthetic', { ...TINY, mechanism: 'end-to-end', K: 1 });
  assert.equal(e2e.lrScaling, 'linear');
  assert.equal(resolveConfig('synthetic', TINY).lrScaling, 'none');
});

// Each mechanism, a short run on the synthetic shapes: the kNN accuracy of pooled backbone features clearly
// above the random encoder's (the same protocol as MoCo's learning test, at a smaller budget). NT-Xent shares
// end-to-end's encoder and step; its parity test covers the loss.
const LEARN: ConfigOverrides = {
  preset: 'cifar',
  width: 8,
  imageSize: 16,
  batchSize: 64,
  bnSplits: 4,
  K: 1024,
  threads: 1,
  seed: 1,
  knnEvery: 1000,
  knnFeature: 'backbone',
  printFreq: 1000,
};
// The memory bank refreshes a row once an epoch, so its run is many epochs of a small set: 256 training images
// (--train-subset of synthetic:2560, whose test split gives 512 kNN queries instead of synthetic:512's 102, a
// standard error of ~2 points instead of ~4). Measured (1.13 build, seeds 1 and 2, random-encoder kNN 11.9% and
// 11.5%): 400 steps (100 epochs) +16.8 and +17.8 points; the former 200 steps of 512 images +6.1 and +0.2 (on 102
// queries +6.9 on 1.13 and +0.0 on 2.13, the CI failure); a run that cannot learn (lr 1e-8: only BatchNorm's
// running statistics move) −0.2 and +3.7 at 200 steps, +0.2 at 400 (seed 1). The threshold +10 sits between.
// End-to-end the same way (256 images, 100 epochs, 400 steps; 1.13, seeds 1–3): +12.1, +18.8, +11.5 from 11.5–12.5%.
// Its former run, 120 steps on synthetic:1000's 200 queries, gave +7.0, −1.5 and +2.0 on seeds 1–3 and +2.0 in CI's
// 2.13 leg: too short to learn reliably and too few queries to tell. Its threshold is +8.
for (const [name, data, over, gain] of [
  ['end-to-end', 'synthetic:2560', { mechanism: 'end-to-end', trainSubset: 256, lr: 0.12, epochs: 100 }, 8],
  [
    'memory-bank',
    'synthetic:2560',
    { mechanism: 'memory-bank', trainSubset: 256, K: 512, T: 0.2, lr: 0.12, epochs: 100 },
    10,
  ],
] as [string, string, ConfigOverrides, number][]) {
  test(`${name} learns: kNN clearly above the random encoder after a short run`, { timeout: 1_200_000 }, async () => {
    const s = await pretrain(resolveConfig(data, { ...LEARN, ...over, out: tmpDir() }), { quiet: true });
    assert.ok(s.knnTop1Init !== undefined && s.knnTop1 !== undefined);
    assert.ok(
      s.knnTop1! >= s.knnTop1Init! + gain,
      `kNN ${s.knnTop1Init!.toFixed(1)}% at init → ${s.knnTop1!.toFixed(1)}% after ${s.steps} steps (need +${gain})`,
    );
  });
}
