// Run checkpoints: one safetensors file per save (model, queue or memory bank, optimizer, RNG) with the run state and
// config as JSON metadata, written atomically; `last` names the newest, also replaced atomically.
import { readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  Tensor,
  getGeneratorState,
  getRngState,
  setGeneratorState,
  setRngState,
  version as torchVersion,
} from '../torch/index.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import { writeTextAtomic } from '../io/atomic.js';
import { loadCheckpointFrom } from '../io/run-dir.js';
import type { Mechanism } from '../moco/index.js';
import { OPTIMIZER_PREFIX, type Optimizer, type OptimizerName } from '../optim/index.js';
import type { PretrainConfig } from './config.js';
import { packageVersion } from './run-log.js';

export const CHECKPOINT_FORMAT = 'moco-ts/1';

/** Where a run stands: `step` optimizer steps done; the next batch is batch `batch` of epoch `epoch`. */
export interface RunState {
  epoch: number;
  batch: number;
  step: number;
}

const RNG_KEY = 'rng.torch';
// The training device's generator too (dropout-free MoCo draws little there, but randperm/randn on CUDA do).
const CUDA_RNG_KEY = 'rng.cuda';

/** The key prefix of state a checkpoint carries for others than the mechanism and its optimizer. */
export const EXTRA_PREFIX = 'extra.';

/**
 * State of the run besides the mechanism and its optimizer that a checkpoint carries (the online probe's weights
 * and momentum), under `extra.<name>.<key>`. A checkpoint without it restores nothing (`load` gets an empty map);
 * one with it resumed without the extra ignores it.
 */
export interface CheckpointExtra {
  readonly name: string;
  /** The tensors to save, by key (the extra's own; they are not disposed). */
  stateTensors(): Map<string, Tensor>;
  /** Restores (copies) them; the map is the checkpoint's and is freed after the call. */
  loadStateTensors(tensors: Map<string, Tensor>): void;
}

export function checkpointName(step: number): string {
  return `checkpoint_${String(step).padStart(7, '0')}.safetensors`;
}

/**
 * The command that continues the run in `runDir`, as it can be pasted into a shell: `moco pretrain --resume DIR`
 * (the run records its data and settings, so no data argument), the directory quoted when it needs it, then `extra`.
 */
export function resumeCommand(runDir: string, extra = ''): string {
  const dir = /^[\w@%+=:,./-]+$/.test(runDir) ? runDir : `'${runDir.replace(/'/g, `'\\''`)}'`;
  return `moco pretrain --resume ${dir}${extra ? ` ${extra}` : ''}`;
}

/**
 * Saves model, queue, optimizer and RNG state, then points `last` at it and prunes old checkpoints. The optimizer's
 * tensors are `optimizer.<state>.<i>` (SGD's `optimizer.momentum_buffer.<i>`, as every checkpoint before LARS and
 * AdamW; LARS's `optimizer.mu.<i>`; AdamW's `optimizer.exp_avg.<i>`, `optimizer.exp_avg_sq.<i>`); the metadata
 * names the optimizer (`optimizer_name`; absent: sgd) and holds its groups and other state. `extras`' tensors are
 * `extra.<name>.<key>` (none: the file is as it was before extras existed).
 */
export function saveCheckpoint(
  dir: string,
  moco: Mechanism,
  opt: Optimizer,
  state: RunState,
  config: PretrainConfig,
  keep = 3,
  extras: readonly CheckpointExtra[] = [],
): string {
  const file = join(dir, checkpointName(state.step));
  const tensors = new Map<string, Tensor>(moco.stateDict());
  const optState = opt.stateTensors();
  for (const [k, b] of optState.tensors) tensors.set(k, b);
  for (const x of extras) for (const [k, t] of x.stateTensors()) tensors.set(`${EXTRA_PREFIX}${x.name}.${k}`, t);
  const rng = getRngState();
  tensors.set(RNG_KEY, rng);
  const device = moco.trainableParameters()[0]!.device;
  const cudaRng = device.startsWith('cuda') ? getGeneratorState(device) : null;
  if (cudaRng) tensors.set(CUDA_RNG_KEY, cudaRng);
  const cpu = device === 'cpu' ? tensors : new Map([...tensors].map(([k, v]) => [k, v.cpu()]));
  saveSafetensors(file, cpu, {
    format: CHECKPOINT_FORMAT,
    moco: JSON.stringify(config),
    state: JSON.stringify(state),
    optimizer: JSON.stringify(optState.groups),
    optimizer_name: opt.name,
    ...(optState.extra ? { optimizer_extra: JSON.stringify(optState.extra) } : {}),
    versions: JSON.stringify({ 'moco-ts': packageVersion(), torch: torchVersion, node: process.version }),
  });
  if (cpu !== tensors) for (const t of cpu.values()) t.dispose();
  rng.dispose();
  cudaRng?.dispose();
  writeTextAtomic(join(dir, 'last'), `${basename(file)}\n`);
  pruneCheckpoints(dir, keep);
  return file;
}

function pruneCheckpoints(dir: string, keep: number): void {
  const all = readdirSync(dir)
    .filter((f) => /^checkpoint_\d+\.safetensors$/.test(f))
    .sort();
  for (const f of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(dir, f), { force: true });
}

export interface LoadedCheckpoint {
  file: string;
  config: PretrainConfig;
  state: RunState;
  tensors: Map<string, Tensor>;
  optimizerGroups: unknown;
  /** The optimizer that wrote it (checkpoints from before LARS and AdamW: sgd). */
  optimizerName: OptimizerName;
  /** Its state that is not a tensor (AdamW's step counts), or null. */
  optimizerExtra: Record<string, unknown> | null;
}

/**
 * Reads a training checkpoint: a file, or a run directory's newest intact checkpoint (a damaged newest one is
 * skipped with a warning naming both; see loadCheckpointFrom).
 */
export function readCheckpoint(path: string, warn?: (message: string) => void): LoadedCheckpoint {
  const readOne = (file: string): LoadedCheckpoint => {
    const { tensors, metadata } = loadSafetensors(file);
    if (metadata.format !== CHECKPOINT_FORMAT || !metadata.moco || !metadata.state) {
      for (const t of tensors.values()) t.dispose();
      throw new Error(
        `${file}: not a moco-ts training checkpoint (format '${metadata.format ?? 'none'}'); to start from pretrained weights use moco convert / --pretrained`,
      );
    }
    return {
      file,
      config: JSON.parse(metadata.moco) as PretrainConfig,
      state: JSON.parse(metadata.state) as RunState,
      tensors,
      optimizerGroups: metadata.optimizer ? JSON.parse(metadata.optimizer) : null,
      optimizerName: (metadata.optimizer_name ?? 'sgd') as OptimizerName,
      optimizerExtra: metadata.optimizer_extra
        ? (JSON.parse(metadata.optimizer_extra) as Record<string, unknown>)
        : null,
    };
  };
  try {
    return loadCheckpointFrom(path, readOne, warn).value;
  } catch (e) {
    throw new Error(`--resume ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Restores model, queue, optimizer state, RNG and `extras` from a loaded checkpoint, then frees its tensors. A checkpoint of
 * another optimizer than `opt` is refused (its state means nothing to this one).
 */
export function restoreCheckpoint(
  ck: LoadedCheckpoint,
  moco: Mechanism,
  opt: Optimizer,
  extras: readonly CheckpointExtra[] = [],
): void {
  const ckOpt = ck.optimizerName ?? 'sgd';
  if (ckOpt !== opt.name) {
    for (const t of ck.tensors.values()) t.dispose();
    throw new Error(
      `--resume ${ck.file}: the run was trained with --optimizer ${ckOpt}, this one is set to --optimizer ${opt.name}; drop --optimizer to continue with ${ckOpt}, or start a new run with another --out`,
    );
  }
  const optTensors = new Map<string, Tensor>();
  const model = new Map<string, Tensor>();
  const extraTensors = new Map(extras.map((x) => [x.name, new Map<string, Tensor>()]));
  for (const [k, v] of ck.tensors) {
    if (k.startsWith(OPTIMIZER_PREFIX)) optTensors.set(k, v);
    else if (k.startsWith(EXTRA_PREFIX)) {
      const rest = k.slice(EXTRA_PREFIX.length);
      const dot = rest.indexOf('.');
      extraTensors.get(rest.slice(0, dot))?.set(rest.slice(dot + 1), v);
    } else if (k !== RNG_KEY && k !== CUDA_RNG_KEY) model.set(k, v);
  }
  moco.loadStateDict(model);
  const groups = Array.isArray(ck.optimizerGroups)
    ? (ck.optimizerGroups as Record<string, unknown>[])
    : opt.stateTensors().groups;
  opt.loadStateTensors({ tensors: optTensors, groups, ...(ck.optimizerExtra ? { extra: ck.optimizerExtra } : {}) });
  const rng = ck.tensors.get(RNG_KEY);
  if (rng) setRngState(rng);
  // Only onto a CUDA run: a GPU checkpoint resumed on the CPU keeps the CPU stream exact and has no device stream.
  const cudaRng = ck.tensors.get(CUDA_RNG_KEY);
  const device = moco.trainableParameters()[0]!.device;
  if (cudaRng && device.startsWith('cuda')) setGeneratorState(device, cudaRng);
  for (const x of extras) x.loadStateTensors(extraTensors.get(x.name)!);
  for (const t of ck.tensors.values()) t.dispose();
}
