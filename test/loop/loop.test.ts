// The training loop on its own: the order of the hooks, where a resumed state continues, stop requests from the
// context, a non-finite loss, and the lr set at every epoch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Loop, type LoopObserver, type LoopStep, type LoopTypes, type RunEnd } from '../../src/loop/index.js';

interface Toy extends LoopTypes {
  config: null;
  model: null;
  optimizer: { lr: number; setLr(lr: number): void };
  output: number;
  metrics: string;
}

const optimizer = (): Toy['optimizer'] => ({
  lr: 0,
  setLr(lr) {
    this.lr = lr;
  },
});

/** Records every hook as one string; `losses` gives the step's loss by step number (default 1). */
function recorder(calls: string[]): LoopObserver<Toy> {
  return {
    start: (ctx) => {
      calls.push(`start@${ctx.state.step}`);
    },
    output: (_ctx, out, at) => {
      calls.push(`output${at.step}=${out}${at.lastOfEpoch ? '!' : ''}`);
    },
    step: (_ctx, e) => {
      calls.push(`step${e.step}`);
    },
    between: (_ctx, e) => {
      calls.push(`between${e.step}`);
    },
    epochEnd: (ctx, e) => {
      calls.push(`epochEnd${e.epoch}:${e.metrics}@${ctx.state.epoch}.${ctx.state.batch}`);
    },
    stopped: (_ctx, reason) => {
      calls.push(`stopped:${reason}`);
    },
    finished: (ctx) => {
      calls.push(`finished@${ctx.state.step}`);
    },
    close: (_ctx, end: RunEnd) => {
      calls.push(`close:${end.state}`);
    },
  };
}

function toyStep(losses: Record<number, number> = {}, lrs: number[] = []): LoopStep<Toy, { i: number }> {
  return {
    train: (ctx, b, at) => {
      lrs.push(ctx.optimizer.lr);
      return { loss: losses[at.step] ?? 1, samples: 4, output: b.i };
    },
    epochEnd: (_ctx, epoch) => `m${epoch}`,
  };
}

const batches = (n: number) =>
  function* (epoch: number, start: number): Iterable<{ i: number }> {
    for (let b = start; b < n; b++) yield { i: 10 * epoch + b };
  };

test("hook order: start, output/step/between a step, epochEnd with the step's metrics, finished, close", async () => {
  const calls: string[] = [];
  const lrs: number[] = [];
  const r = await new Loop(toyStep({}, lrs), [recorder(calls)]).run(batches(2), {
    config: null,
    model: null,
    optimizer: optimizer(),
    epochs: 2,
    batchesPerEpoch: 2,
    lr: (e) => 0.1 * (e + 1),
  });
  assert.deepEqual(calls, [
    'start@0',
    'output1=0',
    'step1',
    'between1',
    'output2=1!',
    'step2',
    'between2',
    'epochEnd0:m0@1.0',
    'output3=10',
    'step3',
    'between3',
    'output4=11!',
    'step4',
    'epochEnd1:m1@2.0',
    'finished@4',
    'close:finished',
  ]);
  assert.deepEqual(lrs, [0.1, 0.1, 0.2, 0.2]);
  assert.deepEqual(r.state, { epoch: 2, batch: 0, step: 4 });
  assert.equal(r.stopped, null);
});

test('a resumed state continues mid-epoch; totalSteps ends the run within an epoch, whose end still runs', async () => {
  const calls: string[] = [];
  const r = await new Loop(toyStep(), [recorder(calls)]).run(batches(3), {
    config: null,
    model: null,
    optimizer: optimizer(),
    epochs: 2,
    batchesPerEpoch: 3,
    totalSteps: 4,
    state: { epoch: 0, batch: 2, step: 2 },
    lr: () => 1,
  });
  assert.deepEqual(calls, [
    'start@2',
    'output3=2!',
    'step3',
    'between3',
    'epochEnd0:m0@1.0',
    'output4=10!',
    'step4',
    'epochEnd1:m1@1.1',
    'finished@4',
    'close:finished',
  ]);
  assert.deepEqual(r.state, { epoch: 1, batch: 1, step: 4 });
});

test('requestStop stops after the current step: no between, no epochEnd, stopped then close', async () => {
  const calls: string[] = [];
  const stopper: LoopObserver<Toy> = {
    step: (ctx, e) => {
      if (e.step === 1) ctx.requestStop('enough');
    },
  };
  const r = await new Loop(toyStep(), [recorder(calls), stopper]).run(batches(3), {
    config: null,
    model: null,
    optimizer: optimizer(),
    epochs: 1,
    batchesPerEpoch: 3,
    lr: () => 1,
  });
  assert.deepEqual(calls, ['start@0', 'output1=0', 'step1', 'stopped:enough', 'close:interrupted']);
  assert.equal(r.stopped, 'enough');
  assert.deepEqual(r.state, { epoch: 0, batch: 1, step: 1 });
});

test("a non-finite loss throws the step's error and closes the observers as diverged", async () => {
  const calls: string[] = [];
  const step: LoopStep<Toy, { i: number }> = {
    ...toyStep({ 2: NaN }),
    diverged: (_ctx, loss, at) => new Error(`bad ${loss} at ${at.step}`),
  };
  await assert.rejects(
    new Loop(step, [recorder(calls)]).run(batches(3), {
      config: null,
      model: null,
      optimizer: optimizer(),
      epochs: 1,
      batchesPerEpoch: 3,
      lr: () => 1,
    }),
    /bad NaN at 2/,
  );
  assert.deepEqual(calls.slice(-2), ['output2=1', 'close:diverged']);
});

test('batches with dispose are disposed after their step, also when the step throws', async () => {
  const disposed: number[] = [];
  const source = function* (): Iterable<{ i: number; dispose(): void }> {
    for (let b = 0; b < 2; b++)
      yield {
        i: b,
        dispose: () => {
          disposed.push(b);
        },
      };
  };
  const step: LoopStep<Toy, { i: number }> = {
    train: (_ctx, b) => {
      if (b.i === 1) throw new Error('boom');
      return { loss: 1, samples: 1 };
    },
  };
  const run = new Loop(step, []).run(source, {
    config: null,
    model: null,
    optimizer: optimizer(),
    epochs: 1,
    batchesPerEpoch: 2,
    lr: () => 1,
  });
  await assert.rejects(run, /boom/);
  assert.deepEqual(disposed, [0, 1]);
});
