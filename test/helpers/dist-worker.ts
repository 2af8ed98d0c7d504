// One rank of the distributed tests (test/dist/). Run as a child process with torchrun's environment and
// MOCO_TEST_SCENARIO; prints one `RESULT <json>` line. Loaded as a plain module (no scenario) it does nothing.
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { MoCo, MoCoV3, createMechanism } from '../../src/moco/index.js';
import { LARS, SGD } from '../../src/optim/index.js';
import {
  ProcessGroup,
  allReduceGradients,
  allReduceGradientsSync,
  broadcastState,
  mocoDistHooks,
  threadsFromEnv,
  DistError,
} from '../../src/dist/index.js';

const scenario = process.env.MOCO_TEST_SCENARIO;
const timeoutMs = Number(process.env.MOCO_TEST_TIMEOUT_MS ?? 20_000);
const out = (v: unknown): void => {
  process.stdout.write(`RESULT ${JSON.stringify(v)}\n`);
};

/** The global batch of a step: deterministic from the step, identical in every process. */
export function globalBatch(step: number, n: number, hw = 16): { xq: Tensor; xk: Tensor } {
  torch.manualSeed(1000 + step);
  return { xq: torch.randn([n, 3, hw, hw]), xk: torch.randn([n, 3, hw, hw]) };
}

/** Rank r of w gets samples r, r+w, r+2w, … (SplitBatchNorm2d's split r of w). */
export function shard(x: Tensor, rank: number, world: number): Tensor {
  const idx = torch.arange(rank, x.shape[0]!, world, { dtype: 'int64' });
  return x.indexSelect(0, idx);
}

export const MOCO_OPTS = { arch: 'resnet18', cifarStem: true, width: 16, dim: 8, K: 256, m: 0.9, T: 0.2 } as const;
export const STEPS = 3;
export const GLOBAL_BATCH = 64;

async function collectives(pg: ProcessGroup): Promise<unknown> {
  const r = pg.rank;
  const a = torch.tensor([r + 1, 10 * (r + 1)]);
  await pg.allReduce(a, 'sum');
  const b = torch.tensor([r + 1, 2]);
  pg.allReduceSync(b, 'avg');
  const c = torch.tensor([r, -r]);
  await pg.allReduce(c, 'max');
  const g = await pg.allGather(torch.tensor([[r, r * r]]));
  const gs = pg.allGatherCatSync(torch.tensor([r]));
  const bc = torch.tensor([r * 7, r]);
  await pg.broadcast(bc, pg.worldSize - 1);
  const bs = torch.tensor([r + 0.5]);
  pg.broadcastSync(bs, 0);
  await pg.barrier();
  pg.barrierSync();
  // A larger tensor through the async path, with other work pending on the event loop meanwhile.
  const big = torch.full([1 << 16], r + 1);
  const timer = setInterval(() => undefined, 1);
  await pg.allReduce(big, 'sum');
  clearInterval(timer);
  return {
    sum: a.toArray(),
    avg: b.toArray(),
    max: c.toArray(),
    gather: g.map((t) => t.toArray()),
    gatherCat: gs.toArray(),
    bcast: bc.toArray(),
    bcastSync: bs.toArray(),
    bigFirst: big.toArray()[0],
    bigLast: big.toArray()[(1 << 16) - 1],
  };
}

/** Three MoCo steps on this rank's shard; per-process BN (no shuffle) or cross-process ShuffleBN. */
async function train(pg: ProcessGroup | null, shuffle: boolean): Promise<unknown> {
  const world = pg?.worldSize ?? 1;
  const rank = pg?.rank ?? 0;
  torch.manualSeed(0);
  const moco = new MoCo({ ...MOCO_OPTS, bnSplits: pg ? 1 : 2, shuffle: pg ? shuffle : false });
  const perms: number[][] = [];
  const keyCheck: number[] = [];
  if (pg) {
    await broadcastState(pg, [...moco.stateDict().values()]);
    moco.dist = mocoDistHooks(pg, { shuffle, onPermutation: (p) => perms.push(p.toArray()) });
  }
  const opt = new SGD(moco.trainableParameters(), { lr: 0.06, momentum: 0.9, weightDecay: 5e-4 });
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const { xq, xk } = globalBatch(step, GLOBAL_BATCH);
    const q = pg ? shard(xq, rank, world) : xq;
    const k = pg ? shard(xk, rank, world) : xk;
    torch.manualSeed(50 + step);
    opt.zeroGrad();
    const o = moco.forwardPair(q, k);
    o.loss.backward();
    // Both forms: async without shuffle, the synchronous one (what a sync training loop calls) with it.
    if (pg && !shuffle) await allReduceGradients(pg, moco.trainableParameters());
    if (pg && shuffle) allReduceGradientsSync(pg, moco.trainableParameters());
    opt.step();
    const l = o.loss.detach().clone();
    if (pg) await pg.allReduce(l, 'avg');
    losses.push(l.item());
    if (pg && shuffle) {
      // The enqueued keys (rank order) must be f_k of each rank's slice of the permuted global batch, unshuffled.
      const B = GLOBAL_BATCH / world;
      const perm = torch.tensor(perms[perms.length - 1]!, { dtype: 'int64' });
      const xAll = torch.cat(
        Array.from({ length: world }, (_, r) => shard(xk, r, world)),
        0,
      );
      const ref = torch.noGrad(() => {
        const parts = Array.from({ length: world }, (_, r) =>
          torch.F.normalize(moco.encoderK.forward(xAll.indexSelect(0, perm.narrow(0, r * B, B))), { dim: 1 }),
        );
        return torch.cat(parts, 0).indexSelect(0, perm.argsort());
      });
      const ptr = moco.queuePtr;
      const block = moco.queue.narrow(1, (ptr - GLOBAL_BATCH + MOCO_OPTS.K) % MOCO_OPTS.K, GLOBAL_BATCH).t();
      keyCheck.push(block.sub(ref).abs().max().item());
    }
  }
  return {
    losses,
    params: moco.namedParameters().map(([n, p]) => [n, Array.from(p.detach().reshape(-1).data() as Float32Array)]),
    queue: Array.from(moco.queue.reshape(-1).data() as Float32Array),
    queuePtr: moco.queuePtr,
    perms,
    keyCheck,
  };
}

export const MOCOV3_OPTS = { arch: 'resnet18', cifarStem: true, width: 8, dim: 8, mlpDim: 32, m: 0.9, T: 0.2 } as const;
export const V3_STEPS = 2;
export const V3_GLOBAL_BATCH = 32;

/**
 * Two MoCo v3 steps (LARS). With `pg`: this rank's shard, keys gathered and BatchNorm synchronised by the run's
 * hooks (through createMechanism), gradients averaged. Without: the global batch in one process, plain BN over it
 * — what SyncBatchNorm and averaging the ranks' gradients must equal.
 */
async function trainV3(pg: ProcessGroup | null): Promise<unknown> {
  const world = 2;
  torch.manualSeed(0);
  // float64: in float32 two steps already part the runs at ReLU kinks (a channel's BN bias 6% apart on libtorch
  // 2.13), which tests the rounding, not the data parallelism.
  const v3 = (
    createMechanism(
      { mechanism: 'mocov3', ...MOCOV3_OPTS },
      pg ? { dist: mocoDistHooks(pg, { shuffle: false }) } : {},
    ) as MoCoV3
  ).to('float64');
  if (pg) await broadcastState(pg, [...v3.stateDict().values()]);
  const opt = new LARS(v3.trainableParameters(), { lr: 0.3, weightDecay: 1e-6 });
  const losses: number[] = [];
  for (let step = 0; step < V3_STEPS; step++) {
    const g = globalBatch(step, V3_GLOBAL_BATCH);
    let [xq, xk] = [g.xq.to('float64'), g.xk.to('float64')];
    if (pg) [xq, xk] = [shard(xq, pg.rank, world), shard(xk, pg.rank, world)];
    opt.zeroGrad();
    const loss = v3.forwardPair(xq, xk).loss;
    loss.backward();
    if (pg) allReduceGradientsSync(pg, v3.trainableParameters());
    opt.step();
    const l = loss.detach().clone();
    if (pg) await pg.allReduce(l, 'avg');
    losses.push(l.item());
  }
  // Parameters and the BN running statistics (float64 buffers; num_batches_tracked left out).
  const state = [...v3.stateDict()].filter(([, t]) => t.dtype === 'float64');
  return { losses, params: state.map(([n, t]) => [n, Array.from(t.detach().reshape(-1).data() as Float64Array)]) };
}

async function main(): Promise<void> {
  if (!scenario) return;
  const threads = threadsFromEnv();
  if (threads) torch.setNumThreads(threads);
  if (scenario === 'single') {
    out(await train(null, false));
    return;
  }
  if (scenario === 'v3-single') {
    out(await trainV3(null));
    return;
  }
  if (scenario === 'init-only') {
    try {
      const pg = await ProcessGroup.init({ timeoutMs });
      await pg.close();
      out({ ok: true });
    } catch (e) {
      out({ error: (e as Error).message });
      process.exitCode = 1;
    }
    return;
  }
  const pg = await ProcessGroup.init({ timeoutMs, heartbeatMs: 300 });
  try {
    if (scenario === 'collectives') out(await collectives(pg));
    else if (scenario === 'train-noshuffle') out(await train(pg, false));
    else if (scenario === 'train-shuffle') out(await train(pg, true));
    else if (scenario === 'v3-train') out(await trainV3(pg));
    else if (scenario === 'loop' || scenario === 'hang') {
      // Step forever; the test kills (loop) or stalls (hang: rank 1 stops calling collectives) rank 1.
      const t = torch.ones([1024]);
      for (let i = 0; ; i++) {
        if (i === 5) process.stdout.write('READY\n');
        // The timer holds pg: a never-settling await alone leaves this frame unreachable, the GC then frees the
        // process group (connections closed, heartbeat stopped) and rank 1 looks dead instead of hung.
        if (scenario === 'hang' && pg.rank === 1 && i === 5)
          await new Promise(() => {
            setInterval(() => pg.rank, 1000);
          });
        if (i % 2) await pg.allReduce(t, 'avg');
        else pg.allGatherSync(t);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await pg.close();
  } catch (e) {
    const d = e instanceof DistError ? { rank: e.rank, op: e.op, culprits: e.culprits } : {};
    process.stderr.write(`moco: ${(e as Error).message}\n`);
    out({ error: (e as Error).message, ...d });
    process.exit(1);
  }
}

await main();
