// --amp bf16 and --channels-last on a short run: a finite loss that falls once the queue holds real keys, and the
// kNN monitor within two points of the fp32 run of the same seed (see the bound below).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pretrain, resolveConfig, type ConfigOverrides } from '../../src/train/index.js';
import { tmpDir } from '../helpers/pytorch.js';

// ResNet-18 width 8 on 16-px views, 8 epochs of 15 steps; the queue (512) fills after 8 steps of 64 keys.
const BASE: ConfigOverrides = {
  preset: 'cifar', width: 8, imageSize: 16, batchSize: 64, K: 512, epochs: 8, threads: 1, seed: 1,
  knnEvery: 1000, knnFeature: 'backbone', printFreq: 1000,
};

async function run(extra: ConfigOverrides): Promise<{ afterFill: number; end: number; knn: number; losses: number[] }> {
  const losses: number[] = [];
  const s = await pretrain(resolveConfig('synthetic:1000', { ...BASE, ...extra, out: tmpDir() }), { quiet: true, onStep: (e) => losses.push(e.loss) });
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  return { afterFill: mean(losses.slice(8, 16)), end: mean(losses.slice(-8)), knn: s.knnTop1!, losses };
}

test('bf16 autocast and channels-last train as fp32 does: finite, falling loss; kNN within two points', { timeout: 900_000 }, async () => {
  const fp32 = await run({});
  const cl = await run({ channelsLast: true });
  const bf16 = await run({ amp: 'bf16', channelsLast: true });
  for (const [name, r] of [['fp32', fp32], ['channels-last', cl], ['bf16 + channels-last', bf16]] as const) {
    assert.ok(r.losses.every(Number.isFinite), `${name}: every loss finite`);
    assert.ok(r.end < r.afterFill - 0.1, `${name}: loss falls once the queue is full (${r.afterFill.toFixed(3)} → ${r.end.toFixed(3)})`);
  }
  // Channels-last changes the memory layout, not the arithmetic beyond rounding: the first step (same weights, same
  // views) agrees to float32 rounding. Later steps may take other kernels' summation orders (libtorch 2.13's oneDNN
  // NHWC convolutions do: loss 3 was 5.3157 vs 5.3092 in CI), which a ReLU near its kink amplifies, so the
  // trajectory is held to the end of the run, as bf16's is, rather than step by step.
  assert.ok(Math.abs(cl.losses[0]! - fp32.losses[0]!) < 1e-4 * Math.abs(fp32.losses[0]!), `channels-last first loss ${cl.losses[0]} vs ${fp32.losses[0]}`);
  assert.ok(Math.abs(cl.end - fp32.end) < 0.05, `channels-last final loss ${cl.end.toFixed(4)} vs fp32 ${fp32.end.toFixed(4)}`);
  // The monitor's kNN moves in steps of half a point on this small set; on libtorch 2.13 the reordered channels-last
  // trajectory ended 1.5 points from fp32's (20.5 vs 22.0; 1.13: within a point), so two points is the bound held.
  assert.ok(Math.abs(cl.knn - fp32.knn) <= 2, `channels-last kNN ${cl.knn}% vs fp32 ${fp32.knn}%`);
  assert.ok(Math.abs(bf16.knn - fp32.knn) <= 2, `bf16 kNN ${bf16.knn}% vs fp32 ${fp32.knn}%`);
  // bf16 rounds the forward: the trajectory may differ, but not by much over 120 steps.
  assert.ok(Math.abs(bf16.end - fp32.end) < 0.1, `bf16 final loss ${bf16.end.toFixed(3)} vs fp32 ${fp32.end.toFixed(3)}`);
});

test('--amp and --channels-last are checked and recorded in config.json', () => {
  assert.throws(() => resolveConfig('synthetic:100', { ...BASE, amp: 'fp8' as 'bf16' }), /--amp.*'off' or 'bf16'/);
  const c = resolveConfig('synthetic:100', { ...BASE, amp: 'bf16', channelsLast: true });
  assert.equal(c.amp, 'bf16');
  assert.equal(c.channelsLast, true);
  const d = resolveConfig('synthetic:100', BASE);
  assert.equal(d.amp, 'off');
  assert.equal(d.channelsLast, false);
});
