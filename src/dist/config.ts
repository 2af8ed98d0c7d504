// Where a process finds its place in a distributed run: torchrun's environment, or main_moco.py's flags.

/** One process's view of the run. */
export interface DistConfig {
  /** Host of rank 0, which runs the rendezvous store. */
  masterAddr: string;
  /** TCP port of the rendezvous store on masterAddr. */
  masterPort: number;
  /** This process's global rank, 0 ≤ rank < worldSize. */
  rank: number;
  /** Number of processes in the run, over all nodes. */
  worldSize: number;
  /** This process's rank on its node (picks the GPU with NCCL). */
  localRank: number;
  /** Processes on this node. */
  localWorldSize: number;
}

/** main_moco.py's flags, as the CLI parses them. */
export interface DistFlags {
  /** `tcp://host:port` of rank 0. */
  distUrl?: string;
  /** With `multiprocessingDistributed`: number of nodes; otherwise the number of processes. */
  worldSize?: number;
  /** With `multiprocessingDistributed`: this node's rank; otherwise this process's rank. */
  rank?: number;
  /** main_moco.py's --multiprocessing-distributed: one process per local device, world = nodes × nproc. */
  multiprocessingDistributed?: boolean;
}

function int(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name}=${JSON.stringify(v)} is not a non-negative integer`);
  return n;
}

/** True when torchrun's variables (or our launcher's) put this process in a multi-process run. */
export function inDistributedEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.WORLD_SIZE !== undefined && env.RANK !== undefined && Number(env.WORLD_SIZE) > 1;
}

/**
 * The run's configuration from torchrun's environment (MASTER_ADDR default 127.0.0.1, MASTER_PORT default 29500,
 * RANK, WORLD_SIZE, LOCAL_RANK default RANK, LOCAL_WORLD_SIZE default WORLD_SIZE). Returns null when WORLD_SIZE
 * is unset (a single-process run).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): DistConfig | null {
  const worldSize = int(env, 'WORLD_SIZE');
  if (worldSize === undefined) return null;
  const rank = int(env, 'RANK');
  if (rank === undefined) throw new Error('WORLD_SIZE is set but RANK is not: set both (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)');
  return check({
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: int(env, 'MASTER_PORT') ?? 29500,
    rank,
    worldSize,
    localRank: int(env, 'LOCAL_RANK') ?? rank,
    localWorldSize: int(env, 'LOCAL_WORLD_SIZE') ?? worldSize,
  });
}

/** Parses `tcp://host:port` (IPv6 hosts in brackets). */
export function parseDistUrl(url: string): { host: string; port: number } {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)\/?$/.exec(url);
  if (!m) throw new Error(`--dist-url ${JSON.stringify(url)}: expected tcp://host:port (env:// is torchrun's environment, the default)`);
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new RangeError(`--dist-url ${url}: port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/**
 * The configuration from main_moco.py-style flags, the environment filling what they leave out. With
 * `multiprocessingDistributed`, worldSize/rank count nodes, and `localRank`/`nprocPerNode` place this process
 * on its node (global rank = node × nproc + local), as main_moco.py does.
 */
export function configFromFlags(f: DistFlags, local: { localRank: number; nprocPerNode: number } = { localRank: 0, nprocPerNode: 1 }, env: NodeJS.ProcessEnv = process.env): DistConfig | null {
  const fromEnv = configFromEnv(env);
  if (!f.distUrl || f.distUrl === 'env://') return fromEnv;
  const { host, port } = parseDistUrl(f.distUrl);
  const nodes = f.worldSize ?? 1;
  const nodeRank = f.rank ?? 0;
  if (f.multiprocessingDistributed) {
    return check({ masterAddr: host, masterPort: port, rank: nodeRank * local.nprocPerNode + local.localRank, worldSize: nodes * local.nprocPerNode, localRank: local.localRank, localWorldSize: local.nprocPerNode });
  }
  return check({ masterAddr: host, masterPort: port, rank: nodeRank, worldSize: nodes, localRank: fromEnv?.localRank ?? 0, localWorldSize: fromEnv?.localWorldSize ?? 1 });
}

function check(c: DistConfig): DistConfig {
  if (c.worldSize < 1) throw new RangeError(`world size must be ≥ 1, got ${c.worldSize}`);
  if (c.rank >= c.worldSize) throw new RangeError(`rank ${c.rank} is not below the world size ${c.worldSize}`);
  if (c.masterPort < 1 || c.masterPort > 65535) throw new RangeError(`MASTER_PORT ${c.masterPort} is out of range`);
  return c;
}

/** torchrun's environment for one process (what the launcher sets for each child). */
export function envFor(c: DistConfig): Record<string, string> {
  return {
    MASTER_ADDR: c.masterAddr, MASTER_PORT: String(c.masterPort), RANK: String(c.rank), WORLD_SIZE: String(c.worldSize),
    LOCAL_RANK: String(c.localRank), LOCAL_WORLD_SIZE: String(c.localWorldSize),
  };
}
