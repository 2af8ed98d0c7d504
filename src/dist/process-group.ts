// A process group over libtorch's c10d: TCPStore rendezvous, Gloo (CPU) or NCCL (CUDA) collectives.
//
// Every collective has a timeout. When one fails, this rank asks the store which peer is to blame (each rank
// publishes a heartbeat and what it is doing from a native thread) and throws a DistError naming the rank and the
// operation, so that a dead or hung peer ends the run with a clear message instead of a frozen process.
import { Tensor, cat } from '../torch/index.js';
import type { NativeTensor } from '../torch/native.js';
import { configFromEnv, type DistConfig } from './config.js';
import { nativeDist, type NativeProcessGroup, type NativeReduceOp, type NativeStore } from './native.js';

export type ReduceOp = NativeReduceOp;
export type Backend = 'gloo' | 'nccl';

/** Default timeout of rendezvous and collectives: 5 minutes, as torch.distributed. */
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

export interface InitOptions extends Partial<DistConfig> {
  /** 'gloo' (CPU tensors) or 'nccl' (CUDA tensors). Default 'gloo'. */
  backend?: Backend;
  /** Limit of the rendezvous and of each collective, in ms. Default 300 000 (5 min). */
  timeoutMs?: number;
  /** Gloo: network interfaces to bind. Default: GLOO_SOCKET_IFNAME (comma-separated), else see `hostname`. */
  ifnames?: string[];
  /** Gloo: address to bind. Default: 127.0.0.1 when the master is on loopback, else this host's name. */
  hostname?: string;
  /** Heartbeat period, ms. Default 1000. A peer whose heartbeat stops for 2.5 periods is reported as gone. */
  heartbeatMs?: number;
}

/** A failed collective or rendezvous: names this rank, the operation and, when it can tell, the peer to blame. */
export class DistError extends Error {
  constructor(
    message: string,
    /** This process's rank. */
    readonly rank: number,
    /** The operation, e.g. "allReduce #12". */
    readonly op: string,
    /** Ranks found dead or late; empty when none could be told. */
    readonly culprits: number[] = [],
  ) {
    super(message);
    this.name = 'DistError';
  }
}

const sleepSync = (ms: number): void => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isLoopback = (h: string): boolean => h === 'localhost' || h === '::1' || /^127\./.test(h);

/** Turns c10d's rendezvous errors into ones that say what to do. */
function rendezvousError(e: unknown, c: DistConfig, timeoutMs: number): Error {
  const msg = e instanceof Error ? e.message : String(e);
  const where = `${c.masterAddr}:${c.masterPort}`;
  if (/address already in use|errno: 98|EADDRINUSE/i.test(msg)) {
    return new Error(`rank 0 cannot listen on ${where}: the port is already in use (another run, or a leftover process?). Pick another MASTER_PORT / --dist-url port. [${msg}]`);
  }
  if (/timed out|timeout|connect|refused|unreachable|resolve|getaddrinfo/i.test(msg) && c.rank !== 0) {
    return new Error(`rank ${c.rank} could not reach the master (rank 0) at ${where} within ${(timeoutMs / 1000).toFixed(0)} s: check MASTER_ADDR/MASTER_PORT (--dist-url), that rank 0 is running, and that the port is open between the hosts. [${msg}]`);
  }
  return new Error(`rank ${c.rank}: rendezvous at ${where} failed: ${msg}`);
}

/** What a peer last published: its heartbeat count and the note "in|after <op> #<seq>". */
interface Beat { count: number; note: string; seq: number }
function parseBeat(v: string | null): Beat | null {
  if (v === null) return null;
  const sp = v.indexOf(' ');
  const note = sp < 0 ? '' : v.slice(sp + 1);
  const m = /#(\d+)/.exec(note);
  return { count: Number(sp < 0 ? v : v.slice(0, sp)), note, seq: m ? Number(m[1]) : 0 };
}

/**
 * A c10d process group. Create with {@link ProcessGroup.init}; all ranks must issue the same collectives in the
 * same order. Each collective has an async form (the wait runs off the JS thread) and a `…Sync` form (for code
 * that cannot await, such as MoCo's key hooks).
 */
export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly backend: Backend;
  readonly timeoutMs: number;
  readonly config: DistConfig;
  private seq = 0;
  private closed = false;

  private constructor(private readonly pg: NativeProcessGroup, private readonly store: NativeStore, c: DistConfig, backend: Backend, timeoutMs: number, private readonly heartbeatMs: number) {
    this.rank = c.rank;
    this.worldSize = c.worldSize;
    this.localRank = c.localRank;
    this.backend = backend;
    this.timeoutMs = timeoutMs;
    this.config = c;
  }

  /** Which backends this build of the addon has. */
  static available(): { gloo: boolean; nccl: boolean } { return nativeDist.info(); }

  /**
   * Joins the run: rank 0 listens on masterAddr:masterPort, the others connect; every rank checks that all agree
   * on the world size; then the backend connects all pairs. Options not given come from torchrun's environment.
   */
  static async init(o: InitOptions = {}): Promise<ProcessGroup> {
    const env = configFromEnv();
    const c: DistConfig = {
      masterAddr: o.masterAddr ?? env?.masterAddr ?? '127.0.0.1',
      masterPort: o.masterPort ?? env?.masterPort ?? 29500,
      rank: o.rank ?? env?.rank ?? 0,
      worldSize: o.worldSize ?? env?.worldSize ?? 1,
      localRank: o.localRank ?? env?.localRank ?? o.rank ?? env?.rank ?? 0,
      localWorldSize: o.localWorldSize ?? env?.localWorldSize ?? o.worldSize ?? env?.worldSize ?? 1,
    };
    if (!(Number.isInteger(c.rank) && Number.isInteger(c.worldSize) && c.rank >= 0 && c.rank < c.worldSize)) {
      throw new RangeError(`need 0 ≤ rank < world size, got rank ${c.rank}, world size ${c.worldSize}`);
    }
    const backend = o.backend ?? 'gloo';
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const heartbeatMs = o.heartbeatMs ?? 1000;
    if (!nativeDist.info()[backend]) {
      throw new Error(backend === 'gloo'
        ? 'this build of moco-ts has no Gloo (the gloo headers were missing at compile time): apt-get install libgloo-dev, then npm run build:native'
        : 'this build of moco-ts has no NCCL (needs libtorch with CUDA and nccl.h at compile time); use --dist-backend gloo');
    }
    let store: NativeStore;
    try {
      store = await nativeDist.connectStore(c.masterAddr, c.masterPort, c.rank === 0, timeoutMs);
    } catch (e) {
      throw rendezvousError(e, c, timeoutMs);
    }
    store.setTimeout(timeoutMs);
    await join(store, c, timeoutMs);
    store.startHeartbeat(`moco/hb/${c.rank}`, heartbeatMs);
    const ifnames = o.ifnames ?? (process.env.GLOO_SOCKET_IFNAME ? process.env.GLOO_SOCKET_IFNAME.split(',').filter(Boolean) : []);
    const hostname = o.hostname ?? (isLoopback(c.masterAddr) ? '127.0.0.1' : undefined);
    if (backend === 'nccl') ncclErrorsAsExceptions();
    let pg: NativeProcessGroup;
    try {
      pg = await nativeDist.newProcessGroup(store, c.rank, c.worldSize, backend, timeoutMs, { prefix: `${backend}/`, ifnames, ...(hostname ? { hostname } : {}) });
    } catch (e) {
      store.stopHeartbeat();
      throw new DistError(`rank ${c.rank}: connecting the ${backend} process group of ${c.worldSize} failed: ${e instanceof Error ? e.message : String(e)}`, c.rank, 'connect');
    }
    return new ProcessGroup(pg, store, c, backend, timeoutMs, heartbeatMs);
  }

  /** True on rank 0, the rank that writes checkpoints, logs and progress. */
  get isMain(): boolean { return this.rank === 0; }

  // ---------------------------------------------------------------- collectives
  /** Reduces each tensor in place over all ranks ('avg' = sum / world size, as DDP's gradient averaging). */
  async allReduce(t: Tensor | Tensor[], op: ReduceOp = 'sum'): Promise<void> {
    const label = this.begin('allReduce');
    for (const x of list(t)) await this.settle(label, this.pg.allReduce([x.native], op, this.timeoutMs, label, false));
    this.end(label);
  }
  allReduceSync(t: Tensor | Tensor[], op: ReduceOp = 'sum'): void {
    const label = this.begin('allReduce');
    for (const x of list(t)) this.settleSync(label, () => this.pg.allReduce([x.native], op, this.timeoutMs, label, true));
    this.end(label);
  }

  /**
   * The sum of `t` over all ranks as a new tensor, with autograd: its backward sums the output gradients over the
   * ranks into each rank's input gradient (torch.distributed.nn.functional.all_reduce). SyncBatchNorm's
   * statistics go through it. On the JS thread, forward and backward; every rank must run the same graph.
   */
  allReduceSumGradSync(t: Tensor): Tensor {
    const label = this.begin('allReduceSumGrad');
    const r = this.settleSync(label, () => this.pg.allReduceSumGrad(t.native, this.timeoutMs, label));
    this.end(label);
    return new Tensor(r);
  }

  /** Every rank's copy of `t`, in rank order (new tensors). */
  async allGather(t: Tensor): Promise<Tensor[]> {
    const label = this.begin('allGather');
    const r = await this.settle(label, this.pg.allGather(t.native, this.timeoutMs, label, false) as Promise<NativeTensor[]>);
    this.end(label);
    return r.map((n) => new Tensor(n));
  }
  allGatherSync(t: Tensor): Tensor[] {
    const label = this.begin('allGather');
    const r = this.settleSync(label, () => this.pg.allGather(t.native, this.timeoutMs, label, true) as NativeTensor[]);
    this.end(label);
    return r.map((n) => new Tensor(n));
  }
  /** main_moco.py's concat_all_gather: every rank's `t` concatenated along dim 0, in rank order. */
  allGatherCatSync(t: Tensor): Tensor {
    const parts = this.allGatherSync(t);
    const r = cat(parts, 0);
    for (const p of parts) p.dispose();
    return r;
  }

  /** Overwrites each tensor in place with root's. */
  async broadcast(t: Tensor | Tensor[], root = 0): Promise<void> {
    const label = this.begin('broadcast');
    for (const x of list(t)) await this.settle(label, this.pg.broadcast([x.native], root, this.timeoutMs, label, false));
    this.end(label);
  }
  broadcastSync(t: Tensor | Tensor[], root = 0): void {
    const label = this.begin('broadcast');
    for (const x of list(t)) this.settleSync(label, () => this.pg.broadcast([x.native], root, this.timeoutMs, label, true));
    this.end(label);
  }

  /** Waits until every rank has reached this barrier. */
  async barrier(): Promise<void> {
    const label = this.begin('barrier');
    await this.settle(label, this.pg.barrier(this.timeoutMs, label, false));
    this.end(label);
  }
  barrierSync(): void {
    const label = this.begin('barrier');
    this.settleSync(label, () => this.pg.barrier(this.timeoutMs, label, true));
    this.end(label);
  }

  /**
   * Leaves the run: a barrier (so that rank 0, which hosts the store, outlives the others' last use of it), then
   * the heartbeat stops. Call once at the end of a successful run.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.barrier();
    } finally {
      this.closed = true;
      this.store.stopHeartbeat();
    }
  }

  // ---------------------------------------------------------------- failure handling
  private begin(name: string): string {
    if (this.closed) throw new Error(`${name}: the process group of rank ${this.rank} is closed`);
    const label = `${name} #${++this.seq}`;
    this.store.heartbeatNote(`in ${label}`);
    return label;
  }
  private end(label: string): void { this.store.heartbeatNote(`after ${label}`); }

  private async settle<T>(label: string, p: Promise<T> | T): Promise<T> {
    const t0 = Date.now();
    try {
      return await p;
    } catch (e) {
      throw this.diagnose(label, e, Date.now() - t0);
    }
  }
  private settleSync<T>(label: string, f: () => T): T {
    const t0 = Date.now();
    try {
      return f();
    } catch (e) {
      throw this.diagnose(label, e, Date.now() - t0);
    }
  }

  /** Names the peer to blame: a rank whose heartbeat stopped is gone; a live one behind us has not arrived. */
  // Blocks for 2.5 heartbeats (an error path: the run is ending anyway).
  private diagnose(label: string, e: unknown, elapsedMs: number): DistError {
    const cause = e instanceof Error ? e.message : String(e);
    const head = `rank ${this.rank} of ${this.worldSize}: ${label} failed after ${(elapsedMs / 1000).toFixed(1)} s`;
    const peers = [...Array(this.worldSize).keys()].filter((r) => r !== this.rank);
    let before: (Beat | null)[];
    let after: (Beat | null)[];
    try {
      this.store.setTimeout(Math.min(this.timeoutMs, 5000));
      before = peers.map((r) => parseBeat(this.store.tryGet(`moco/hb/${r}`)));
      sleepSync(this.heartbeatMs * 2.5);
      after = peers.map((r) => parseBeat(this.store.tryGet(`moco/hb/${r}`)));
    } catch {
      if (this.rank !== 0) {
        return new DistError(`${head}: rank 0 (the master, hosting the store at ${this.config.masterAddr}:${this.config.masterPort}) is gone. [${cause}]`, this.rank, label, [0]);
      }
      return new DistError(`${head}: ${cause}`, this.rank, label);
    }
    const gone: string[] = [];
    const late: string[] = [];
    const culprits: number[] = [];
    peers.forEach((r, i) => {
      const a = before[i], b = after[i];
      if (!b || !a || a.count === b.count) {
        gone.push(`rank ${r} is gone (no heartbeat for ${((this.heartbeatMs * 2.5) / 1000).toFixed(1)} s${b?.note ? `; last seen ${b.note}` : ''})`);
        culprits.push(r);
      } else if (b.seq < this.seq) {
        late.push(`rank ${r} is alive but has not reached it (${b.note || 'before its first collective'})`);
        culprits.push(r);
      }
    });
    const why = gone.length ? gone.join('; ') : late.length ? late.join('; ') : 'no peer could be blamed';
    return new DistError(`${head}: ${why}. [${cause}]`, this.rank, label, culprits);
  }
}

function list(t: Tensor | Tensor[]): Tensor[] { return Array.isArray(t) ? t : [t]; }

/** Registers this rank in the store and waits for all ranks, checking that they agree on the world size. */
async function join(store: NativeStore, c: DistConfig, timeoutMs: number): Promise<void> {
  const fail = (msg: string): never => {
    try { store.set('moco/abort', `rank ${c.rank}: ${msg}`); } catch { /* the store may be gone too */ }
    throw new Error(msg);
  };
  if (store.add(`moco/claim/${c.rank}`, 1) > 1) fail(`rank ${c.rank} joined twice: two processes were given RANK=${c.rank}`);
  store.set(`moco/rank/${c.rank}`, JSON.stringify({ worldSize: c.worldSize, pid: process.pid }));
  const joined = store.add('moco/joined', 1);
  if (joined > c.worldSize) fail(`world-size mismatch: ${joined} processes joined but rank ${c.rank} has WORLD_SIZE=${c.worldSize}`);
  const keys = [...Array(c.worldSize).keys()].map((r) => `moco/rank/${r}`);
  const t0 = Date.now();
  for (;;) {
    const abort = store.tryGet('moco/abort');
    if (abort !== null) throw new Error(`rendezvous aborted: ${abort}`);
    if (store.check(keys)) break;
    if (Date.now() - t0 > timeoutMs) {
      const missing = keys.map((k, r) => (store.check([k]) ? -1 : r)).filter((r) => r >= 0);
      fail(`rendezvous timed out after ${(timeoutMs / 1000).toFixed(0)} s: rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} never joined (WORLD_SIZE=${c.worldSize})`);
    }
    await sleep(50);
  }
  for (let r = 0; r < c.worldSize; r++) {
    const ws = (JSON.parse(store.get(`moco/rank/${r}`)) as { worldSize: number }).worldSize;
    if (ws !== c.worldSize) fail(`world-size mismatch: rank ${r} has WORLD_SIZE=${ws} but rank ${c.rank} has WORLD_SIZE=${c.worldSize}`);
  }
  // A process with a larger WORLD_SIZE that joined after the check above is caught by its own join().
  const n = store.add('moco/joined', 0);
  if (n > c.worldSize) fail(`world-size mismatch: ${n} processes joined but WORLD_SIZE=${c.worldSize}`);
}

/**
 * By default ProcessGroupNCCL's watchdog aborts the whole process when a collective times out or a peer dies
 * (TORCH_NCCL_ASYNC_ERROR_HANDLING=3 in 2.x), and wait() returns before the GPU work ends. Blocking wait makes
 * wait() throw the timeout (our JS error then names the dead or late rank, as with Gloo); "clean up only" aborts
 * the communicators without killing Node. Read when the group is created; a user's own setting wins. 1.13 reads
 * the names without the TORCH_ prefix.
 */
function ncclErrorsAsExceptions(env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, value] of [['NCCL_BLOCKING_WAIT', '1'], ['NCCL_ASYNC_ERROR_HANDLING', '2']] as const) {
    const set = env[`TORCH_${name}`] ?? env[name] ?? value;
    env[`TORCH_${name}`] = set;
    env[name] = set;
  }
}
