// Distributed training over libtorch's c10d (Gloo), on loopback: collectives with 2 and 3 processes, DDP
// equivalence with SplitBatchNorm2d, identical queues, cross-process ShuffleBN, MoCo v3 with SyncBatchNorm
// (equivalence and a CLI run), faults and rendezvous errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ProcessGroup, envFor, freePort, launch, relaunchArgv, parseDistUrl, configFromFlags } from '../../src/dist/index.js';
import { existsSync, rmSync } from 'node:fs';
import { GLOBAL_BATCH, MOCO_OPTS } from '../helpers/dist-worker.js';
import { runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/pytorch.js';

const WORKER = fileURLToPath(new URL('../helpers/dist-worker.js', import.meta.url));
const available = ProcessGroup.available().gloo;
const opts = { skip: available ? false : 'this build has no Gloo (apt-get install libgloo-dev, rebuild)' } as const;

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; result: Record<string, unknown> | null; ms: number }

/** Starts one rank of a scenario. */
function rank(scenario: string, r: number, world: number, port: number, extra: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
  const t0 = Date.now();
  const child = spawn(process.execPath, [WORKER], {
    env: { ...process.env, ...envFor({ masterAddr: '127.0.0.1', masterPort: port, rank: r, worldSize: world, localRank: r, localWorldSize: world }), MOCO_TEST_SCENARIO: scenario, MOCO_NUM_THREADS: '1', ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '', stderr = '';
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  // 'close', not 'exit': the last stdout chunks may arrive after the process has exited.
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => {
    const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
    resolve({ code, signal, stdout, stderr, result: line ? JSON.parse(line.slice(7)) as Record<string, unknown> : null, ms: Date.now() - t0 });
  }));
  return { child, done };
}

async function runAll(scenario: string, world: number, extra: Record<string, string> = {}): Promise<Run[]> {
  const port = await freePort();
  const runs = await Promise.all(Array.from({ length: world }, (_, r) => rank(scenario, r, world, port, extra).done));
  runs.forEach((x, r) => assert.equal(x.code, 0, `rank ${r} exited ${x.code ?? x.signal}: ${x.stderr.slice(-2000)}`));
  return runs;
}

for (const world of [2, 3]) {
  test(`collectives with ${world} processes: allReduce sum/avg/max, allGather, broadcast, barrier, sync and async`, opts, async () => {
    const runs = await runAll('collectives', world);
    const sum = (f: (r: number) => number): number => Array.from({ length: world }, (_, r) => f(r)).reduce((a, b) => a + b, 0);
    runs.forEach(({ result }, r) => {
      assert.ok(result, `rank ${r} printed no result`);
      assert.deepEqual(result.sum, [sum((i) => i + 1), sum((i) => 10 * (i + 1))]);
      assert.deepEqual(result.avg, [sum((i) => i + 1) / world, 2]);
      assert.deepEqual(result.max, [world - 1, 0]);
      assert.deepEqual(result.gather, Array.from({ length: world }, (_, i) => [i, i * i]));
      assert.deepEqual(result.gatherCat, Array.from({ length: world }, (_, i) => i));
      assert.deepEqual(result.bcast, [(world - 1) * 7, world - 1]);
      assert.deepEqual(result.bcastSync, [0.5]);
      assert.equal(result.bigFirst, sum((i) => i + 1));
      assert.equal(result.bigLast, sum((i) => i + 1));
    });
  });
}

type TrainResult = { losses: number[]; params: [string, number[]][]; queue: number[]; queuePtr: number; perms: number[][]; keyCheck: number[] };

const maxAbs = (b: number[]): number => b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * |a − b| ≤ atol + rtol·|b| element-wise. For weights atol = 1e-3·max|b| of the tensor: float32 rounding in
 * BatchNorm's backward (sums that cancel) leaves near-zero weights (BN biases start at 0) with absolute noise;
 * the same one-process run with 1 and with 2 threads differs by up to 1e-3·max|b| after 3 steps (measured), so an
 * element-wise rtol alone would test the rounding, not the data parallelism. Losses are held to rtol 1e-4.
 */
function assertAllClose(a: number[], b: number[], what: string, rtol = 1e-4, atol = 1e-3 * maxAbs(b)): void {
  assert.equal(a.length, b.length, `${what}: length`);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const excess = Math.abs(a[i]! - b[i]!) - (atol + rtol * Math.abs(b[i]!));
    if (excess > worst) { worst = excess; at = i; }
  }
  assert.ok(at < 0, `${what}: element ${at}: ${a[at]} vs ${b[at]}`);
}

test('2 processes × batch 32 (per-process BN) == 1 process × batch 64 with SplitBatchNorm2d(2): losses, weights, queues', opts, async () => {
  const [single, ...dist] = await Promise.all([runAll('single', 1, { WORLD_SIZE: '' }), runAll('train-noshuffle', 2)]).then(([s, d]) => [s[0]!, ...d]);
  const ref = single!.result as unknown as TrainResult;
  const [r0, r1] = dist.map((d) => d.result as unknown as TrainResult);
  assertAllClose(r0!.losses, ref.losses, 'losses', 1e-4, 0);
  assert.deepEqual(r0!.losses, r1!.losses);
  for (const [i, [name, w]] of r0!.params.entries()) {
    assert.equal(name, ref.params[i]![0]);
    assertAllClose(w, ref.params[i]![1], `weights ${name}`);
    assert.deepEqual(w, r1!.params[i]![1], `${name}: identical on both ranks`);
  }
  // Queues: identical on all ranks; vs one process, each step's block holds the same keys, rank-major
  // (rank 0's samples 0, 2, 4, … then rank 1's) instead of sample order.
  assert.deepEqual(r0!.queue, r1!.queue);
  assert.equal(r0!.queuePtr, ref.queuePtr);
  const { dim, K } = MOCO_OPTS;
  const order = [...Array(GLOBAL_BATCH / 2).keys()].map((i) => 2 * i).concat([...Array(GLOBAL_BATCH / 2).keys()].map((i) => 2 * i + 1));
  const permuted = ref.queue.slice();
  for (let s = 0; s < 3; s++) for (let j = 0; j < GLOBAL_BATCH; j++) for (let c = 0; c < dim; c++) permuted[c * K + s * GLOBAL_BATCH + j] = ref.queue[c * K + s * GLOBAL_BATCH + order[j]!]!;
  assertAllClose(r0!.queue, permuted, 'queue');
});

test('MoCo v3: 2 processes × batch 16 (SyncBatchNorm, keys gathered) == 1 process × batch 32: losses, weights, BN statistics (float64)', opts, async () => {
  const [single, ...dist] = await Promise.all([runAll('v3-single', 1, { WORLD_SIZE: '' }), runAll('v3-train', 2)]).then(([s, d]) => [s[0]!, ...d]);
  const ref = single!.result as unknown as TrainResult;
  const [r0, r1] = dist.map((d) => d.result as unknown as TrainResult);
  assert.equal(r0!.losses.length, 2);
  // float64 (dist-worker.ts says why): the two runs agree to rounding, ~1e-14 of each tensor's largest value.
  assertAllClose(r0!.losses, ref.losses, 'losses', 1e-10, 0);
  assert.deepEqual(r0!.losses, r1!.losses);
  assert.equal(r0!.params.length, ref.params.length);
  for (const [i, [name, w]] of r0!.params.entries()) {
    assert.equal(name, ref.params[i]![0]);
    // An absolute floor for the running means that are zero but for rounding (the predictor's first BN sees the
    // projector's last BN output, whose batch mean is 0).
    assertAllClose(w, ref.params[i]![1], name, 1e-9, Math.max(1e-12, 1e-9 * maxAbs(ref.params[i]![1]!)));
    assert.deepEqual(w, r1!.params[i]![1], `${name}: identical on both ranks`);
  }
});

test('moco pretrain --mechanism mocov3 --nproc-per-node 2: 2 steps through the launcher', opts, async () => {
  const out = tmpDir();
  const { code, out: stdout, err } = await runCli([
    'pretrain', 'synthetic:64', '--preset', 'mocov3-cifar', '--nproc-per-node', '2', '-a', 'resnet18', '--width', '8',
    '--image-size', '16', '--moco-mlp-dim', '32', '--moco-dim', '8', '-b', '16', '--epochs', '1', '--max-steps', '2',
    '--knn-every', '0', '--threads', '2', '--out', out,
  ]).done;
  assert.equal(code, 0, err.slice(-2000));
  const summary = JSON.parse(stdout.trim().split('\n').pop()!) as { steps: number; worldSize: number; checkpoint: string };
  assert.equal(summary.worldSize, 2);
  assert.equal(summary.steps, 2);
  assert.ok(existsSync(summary.checkpoint), summary.checkpoint);
  rmSync(out, { recursive: true, force: true });
});

test('ShuffleBN across 2 processes: one permutation everywhere, keys unshuffled to their owners, identical queues', opts, async () => {
  const runs = (await runAll('train-shuffle', 2)).map((r) => r.result as unknown as TrainResult);
  const [a, b] = runs;
  assert.deepEqual(a!.perms, b!.perms, 'rank 0 broadcasts its permutation');
  assert.deepEqual(a!.queue, b!.queue, 'identical queues');
  assert.deepEqual(a!.losses, b!.losses);
  for (const k of [...a!.keyCheck, ...b!.keyCheck]) assert.ok(k < 1e-5, `enqueued keys differ from f_k(shuffled slice) by ${k}`);
  const B = GLOBAL_BATCH / 2;
  for (const perm of a!.perms) {
    assert.deepEqual([...perm].sort((x, y) => x - y), [...Array(GLOBAL_BATCH).keys()], 'a permutation of the global batch');
    // Process r's key sub-batch (BN statistics) is never the sample set of a query sub-batch: each mixes ranks.
    for (let r = 0; r < 2; r++) {
      const owners = new Set(perm.slice(r * B, (r + 1) * B).map((i) => Math.floor(i / B)));
      assert.equal(owners.size, 2, `rank ${r}'s key batch mixes samples of both ranks`);
    }
  }
});

/** Waits for a line on a child's stdout. */
function waitFor(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => { buf += d.toString(); if (buf.includes(text)) resolve(); });
  });
}

test('killing rank 1 mid-run makes rank 0 exit non-zero, naming rank 1 and the operation', opts, async () => {
  const port = await freePort();
  const [p0, p1] = [rank('loop', 0, 2, port), rank('loop', 1, 2, port)];
  await waitFor(p1.child, 'READY');
  p1.child.kill('SIGKILL');
  const r0 = await p0.done;
  await p1.done;
  assert.equal(r0.code, 1);
  assert.match(r0.stderr, /rank 0 of 2: (allReduce|allGather) #\d+ failed after .*rank 1 is gone/);
  assert.ok(r0.ms < 20_000, `rank 0 took ${r0.ms} ms`);
});

test('a hung rank makes the others fail within the timeout, naming it', opts, async () => {
  const port = await freePort();
  const extra = { MOCO_TEST_TIMEOUT_MS: '3000' };
  const [p0, p1] = [rank('hang', 0, 2, port, extra), rank('hang', 1, 2, port, extra)];
  const r0 = await p0.done;
  p1.child.kill('SIGKILL');
  assert.equal(r0.code, 1);
  assert.match(r0.stderr, /rank 0 of 2: (allReduce|allGather) #\d+ failed after [3-9]\.\d s: rank 1 is alive but has not reached it/);
});

test('rendezvous errors: port in use, unreachable master, world-size mismatch', opts, async () => {
  // Port in use: something else listens on MASTER_PORT.
  const blocker = createServer();
  const port = await new Promise<number>((res) => blocker.listen(0, '127.0.0.1', () => res((blocker.address() as { port: number }).port)));
  await assert.rejects(ProcessGroup.init({ masterPort: port, rank: 0, worldSize: 2, timeoutMs: 2000 }), /rank 0 cannot listen on 127\.0\.0\.1:\d+: the port is already in use/);
  blocker.close();
  // Unreachable master: nobody listens.
  const free = await freePort();
  await assert.rejects(ProcessGroup.init({ masterPort: free, rank: 1, worldSize: 2, timeoutMs: 1500 }), /rank 1 could not reach the master \(rank 0\) at 127\.0\.0\.1:\d+ within 2 s/);
  // World-size mismatch: rank 0 says 3, rank 1 says 2.
  const p2 = await freePort();
  const [a, b] = [rank('init-only', 0, 3, p2, { MOCO_TEST_TIMEOUT_MS: '10000' }), rank('init-only', 1, 2, p2, { MOCO_TEST_TIMEOUT_MS: '10000' })];
  const [ra, rb] = await Promise.all([a.done, b.done]);
  assert.equal(ra.code, 1);
  assert.equal(rb.code, 1);
  assert.match(String(rb.result?.error), /world-size mismatch: rank 0 has WORLD_SIZE=3 but rank 1 has WORLD_SIZE=2/);
  assert.match(String(ra.result?.error), /rendezvous aborted: rank 1: world-size mismatch/);
  assert.ok(ra.ms < 9000, 'rank 0 learns of the mismatch without waiting for its timeout');
});

test('launcher: N local ranks with torchrun variables and split threads; a failing rank fails the run', opts, async () => {
  const ok = await launch({ nprocPerNode: 2, argv: [process.execPath, WORKER], env: { MOCO_TEST_SCENARIO: 'init-only', MOCO_TEST_TIMEOUT_MS: '10000' }, threads: 2 });
  assert.equal(ok.code, 0);
  assert.equal(ok.exits.length, 2);
  const bad = await launch({ nprocPerNode: 2, argv: [process.execPath, '-e', 'process.exit(Number(process.env.RANK) === 1 ? 3 : 0)'], graceMs: 1000 });
  assert.equal(bad.code, 3);
  assert.deepEqual(relaunchArgv(['node', 'moco', 'pretrain', 'd', '--nproc-per-node', '2', '--epochs=1', '--nproc-per-node=4'], []), ['node', 'moco', 'pretrain', 'd', '--epochs=1']);
  assert.deepEqual(parseDistUrl('tcp://10.0.0.1:23456'), { host: '10.0.0.1', port: 23456 });
  const c = configFromFlags({ distUrl: 'tcp://h:1234', worldSize: 2, rank: 1, multiprocessingDistributed: true }, { localRank: 1, nprocPerNode: 4 }, {});
  assert.deepEqual(c, { masterAddr: 'h', masterPort: 1234, rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4 });
});
