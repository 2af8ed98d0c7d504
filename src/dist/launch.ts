// A local launcher, as torchrun: starts N processes of the same command with torchrun's environment, splits the
// CPU threads between them, and ends the run when one of them fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism, constants as osConstants } from 'node:os';
import { envFor } from './config.js';

export interface LaunchOptions {
  /** Processes to start on this node. */
  nprocPerNode: number;
  /** The command of every process: argv[0] is the executable (default: this Node), the rest its arguments. */
  argv: string[];
  /** Nodes in the run. Default 1. */
  nnodes?: number;
  /** This node's index, 0 ≤ nodeRank < nnodes. Default 0. */
  nodeRank?: number;
  /** Host of global rank 0. Default 127.0.0.1 (MASTER_ADDR if set). */
  masterAddr?: string;
  /** Port of the rendezvous. Default: MASTER_PORT if set, else a free port when single-node, else 29500. */
  masterPort?: number;
  /** CPU threads to split evenly between the local processes (each gets at least 1). Default: all cores. */
  threads?: number;
  /** Extra environment for every process. */
  env?: Record<string, string>;
  /** After one process fails, how long the others get to exit on their own (and report) before SIGTERM, ms. Default 15 000. */
  graceMs?: number;
  /** Called with each process as it starts (tests use it to inject faults). */
  onSpawn?: (rank: number, child: ChildProcess) => void;
}

/** The environment variable that carries a process's thread share (read by {@link threadsFromEnv}). */
export const THREADS_ENV = 'MOCO_NUM_THREADS';

/** This process's thread share when a launcher set one, else undefined. */
export function threadsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const n = Number(env[THREADS_ENV]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** A TCP port that was free a moment ago on `host` (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Outcome of one process. */
export interface RankExit { rank: number; code: number | null; signal: NodeJS.Signals | null }

/**
 * Runs the command as `nprocPerNode` local ranks and resolves once all have exited: with 0 when every rank
 * succeeded, else with the first failing rank's exit code (128 + signal number for a signal, as a shell).
 * A failure gives the other ranks `graceMs` to notice through their own timeouts and report, then ends them.
 */
export async function launch(o: LaunchOptions): Promise<{ code: number; exits: RankExit[] }> {
  const n = o.nprocPerNode;
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--nproc-per-node must be a positive integer, got ${n}`);
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) throw new RangeError(`node rank ${nodeRank} is not in 0..${nnodes - 1}`);
  const masterAddr = o.masterAddr ?? process.env.MASTER_ADDR ?? '127.0.0.1';
  const envPort = Number(process.env.MASTER_PORT);
  const masterPort = o.masterPort ?? (Number.isInteger(envPort) && envPort > 0 ? envPort : nnodes === 1 ? await freePort(masterAddr) : 29500);
  const threads = Math.max(1, Math.floor((o.threads ?? availableParallelism()) / n));
  const [exe, ...args] = o.argv.length ? o.argv : [process.execPath];
  const graceMs = o.graceMs ?? 15_000;

  const children: ChildProcess[] = [];
  const exits: RankExit[] = [];
  let firstFailure: RankExit | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const endAll = (sig: NodeJS.Signals): void => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig); };
  const onSignal = (sig: NodeJS.Signals): void => endAll(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await new Promise<void>((resolve) => {
      for (let local = 0; local < n; local++) {
        const rank = nodeRank * n + local;
        const env = {
          ...process.env,
          ...o.env,
          ...envFor({ masterAddr, masterPort, rank, worldSize: nnodes * n, localRank: local, localWorldSize: n }),
          [THREADS_ENV]: String(threads),
          OMP_NUM_THREADS: String(threads),
        };
        const child = spawn(exe!, args, { env, stdio: 'inherit' });
        children.push(child);
        o.onSpawn?.(rank, child);
        child.on('exit', (code, signal) => {
          const e = { rank, code, signal };
          exits.push(e);
          if ((code !== 0 || signal) && !firstFailure) {
            firstFailure = e;
            process.stderr.write(`moco launch: rank ${rank} exited with ${signal ? `signal ${signal}` : `code ${code}`}; the other ranks get ${graceMs / 1000} s to stop\n`);
            killTimer = setTimeout(() => {
              endAll('SIGTERM');
              killTimer = setTimeout(() => endAll('SIGKILL'), 5000);
            }, graceMs);
          }
          if (exits.length === n) resolve();
        });
      }
    });
  } finally {
    if (killTimer) clearTimeout(killTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const f = firstFailure as RankExit | null;
  const code = !f ? 0 : f.signal ? signalExitCode(f.signal) : f.code ?? 1;
  return { code, exits };
}

/** The shell's exit status of a process ended by `signal`: 128 + its number (SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: string): number {
  return 128 + (osConstants.signals[signal as NodeJS.Signals] ?? 1);
}

/**
 * This process's command line without `--nproc-per-node N` (and `--nproc-per-node=N`), for relaunching the
 * same command as each rank: [node, ...execArgv, script, ...args].
 */
export function relaunchArgv(argv: string[] = process.argv, execArgv: string[] = process.execArgv): string[] {
  const out: string[] = [];
  const rest = argv.slice(2);
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--nproc-per-node') { i++; continue; }
    if (a.startsWith('--nproc-per-node=')) continue;
    out.push(a);
  }
  return [argv[0]!, ...execArgv, argv[1]!, ...out];
}
