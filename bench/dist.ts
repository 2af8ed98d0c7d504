// images/s of MoCo training steps (CIFAR ResNet-18, 32×32, synthetic images): 1 process × 2 threads vs
// 2 processes × 1 thread (Gloo on loopback, gradient all-reduce, key all-gather, cross-process ShuffleBN).
// Prints one JSON line. Report only: no target. Options: BENCH_BATCH (global, default 64), BENCH_STEPS (default 6).
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { MoCo } from '../src/moco/index.js';
import { SGD } from '../src/optim/index.js';
import { ProcessGroup, distributedTraining, envFor, freePort, threadsFromEnv } from '../src/dist/index.js';
import { benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('dist')) process.exit(0);

const BATCH = Number(process.env.BENCH_BATCH ?? 64);
const STEPS = Number(process.env.BENCH_STEPS ?? 6);
const WARMUP = 2;

/** One rank (or the single process): timed MoCo steps; prints images/s of the whole run (global batch). */
async function worker(): Promise<void> {
  const threads = threadsFromEnv();
  if (threads) torch.setNumThreads(threads);
  const pg = process.env.WORLD_SIZE ? await ProcessGroup.init({ backend: 'gloo' }) : null;
  const d = pg ? distributedTraining(pg) : null;
  torch.manualSeed(0);
  const moco = new MoCo({
    arch: 'resnet18',
    cifarStem: true,
    dim: 128,
    K: 4096,
    m: 0.99,
    T: 0.1,
    head: 'mlp',
    bnSplits: pg ? 1 : 8,
    shuffle: true,
  });
  if (d) {
    await d.syncState([...moco.stateDict().values()]);
    moco.dist = d.hooks(true);
  }
  const opt = new SGD(moco.trainableParameters(), { lr: 0.06, momentum: 0.9, weightDecay: 5e-4 });
  const n = d ? d.localBatch(BATCH) : BATCH;
  let t0 = 0;
  for (let s = 0; s < STEPS + WARMUP; s++) {
    if (s === WARMUP) {
      if (pg) await pg.barrier();
      t0 = performance.now();
    }
    torch.tidy(() => {
      const xq = torch.randn([n, 3, 32, 32]),
        xk = torch.randn([n, 3, 32, 32]);
      const out = moco.forwardPair(xq, xk);
      opt.zeroGrad();
      out.loss.backward();
      d?.afterBackward(moco.trainableParameters());
      opt.step();
      return undefined;
    });
  }
  if (pg) await pg.barrier();
  const ips = (STEPS * BATCH) / ((performance.now() - t0) / 1000);
  if (!pg || pg.isMain) process.stdout.write(`IPS ${ips}\n`);
  if (pg) await pg.close();
}

function child(env: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_DIST_WORKER: '1', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    c.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    c.on('close', (code) => {
      const m = /IPS (\S+)/.exec(out);
      if (m) resolve(Number(m[1]));
      else if (code === 0) resolve(NaN);
      else reject(new Error(`bench child exited ${code}`));
    });
  });
}

async function main(): Promise<void> {
  if (process.env.BENCH_DIST_WORKER) {
    await worker();
    return;
  }
  const single = await child({ MOCO_NUM_THREADS: '2', WORLD_SIZE: '' });
  const port = await freePort();
  const two = await Promise.all(
    [0, 1].map((r) =>
      child({
        ...envFor({
          masterAddr: '127.0.0.1',
          masterPort: port,
          rank: r,
          worldSize: 2,
          localRank: r,
          localWorldSize: 2,
        }),
        MOCO_NUM_THREADS: '1',
      }),
    ),
  );
  const dist = two.find((x) => Number.isFinite(x)) ?? NaN;
  console.log(
    JSON.stringify({
      bench: 'dist',
      model: 'resnet18-cifar mlp K4096',
      globalBatch: BATCH,
      steps: STEPS,
      backend: 'gloo',
      '1proc_x2threads_img_s': +single.toFixed(1),
      '2proc_x1thread_img_s': +dist.toFixed(1),
      ratio: +(dist / single).toFixed(3),
      torch: torch.version,
    }),
  );
}

await main();
