// moco sweep: a grid of pre-training configs run one after another on one dataset and budget, each an ordinary
// run directory (out/cells/<cell>) trained in a process of its own (sweep-cell.ts) — so its peak memory is its own —
// then evaluated (kNN monitor at the end; optionally the cached-feature linear probe). A finished cell leaves
// sweep-cell.json and is not rerun; an interrupted one resumes from its checkpoint. Both only while the settings
// the cell recorded (its config.json) are the ones this sweep resolves for it: a cell is its full config, not its
// name, so a sweep rerun with other common settings refuses (or, asked to, moves the old cell aside and reruns).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTextAtomic } from '../io/atomic.js';
import { flagOf, resolveConfig, type ConfigOverrides, type PretrainConfig } from './config.js';
import type { PretrainSummary } from './pretrain.js';
import type { CellJob, CellLinclsResult } from './sweep-cell.js';
import { cellOverrides, gridCells, type GridAxis, type GridCell } from './sweep-grid.js';
import { writeSweepTables, type SweepRow } from './sweep-report.js';

export interface SweepOptions {
  /** Dataset spec, as `moco pretrain`'s. */
  data: string;
  /** Settings every cell shares (flags and --config), before the cell's own. */
  base: ConfigOverrides;
  axes: GridAxis[];
  /** The sweep directory: cells/<cell>/ run directories, sweep.json, sweep.csv, sweep.md. */
  out: string;
  /** Also run the cached-feature linear probe on every cell, for this many epochs (0 or undefined: off). */
  linearEpochs?: number;
  /** No progress lines on stderr. */
  quiet?: boolean;
  /**
   * Cells whose recorded settings differ from this sweep's are moved to `out/replaced/<cell>-<time>` and trained
   * anew. Without it the sweep refuses before training anything, naming each changed cell and setting.
   */
  rerunChanged?: boolean;
  /**
   * URL of a module each cell's process loads for the views of its run (`runObservers`, `neighbourGrid`): views'
   * RUN_VIEWS gives report.html and the kNN neighbour grids, as `moco pretrain` writes them. Default: none.
   */
  cellViews?: string;
}

export interface SweepResult {
  rows: SweepRow[];
  /** Cells trained (or resumed) by this call; the others were finished before. */
  ran: string[];
  /** Cells run before with other settings, moved aside (rerunChanged): cell → where the old run now is. */
  replaced?: Record<string, string>;
  /** Set when a signal stopped the sweep (rerun the same command to continue). */
  interrupted?: string;
  files: { json: string; csv: string; md: string };
}

const CELL_RESULT = 'sweep-cell.json';
const CELL = fileURLToPath(new URL('./sweep-cell.js', import.meta.url));

/** The resolved config of each cell, validated before any cell runs (a bad grid value fails first). */
export function sweepConfigs(o: SweepOptions): { cell: GridCell; config: PretrainConfig }[] {
  return gridCells(o.axes).map((cell) => {
    const over: ConfigOverrides = { ...o.base, ...cellOverrides(cell), out: join(o.out, 'cells', cell.name) };
    let config: PretrainConfig;
    try {
      config = resolveConfig(o.data, over);
    } catch (e) {
      throw new Error(`sweep cell ${cell.name}: ${(e as Error).message}`, { cause: e });
    }
    // Each cell is evaluated once at its end (and its random encoder before its first step).
    if (o.base.knnEvery === undefined) config.knnEvery = config.epochs;
    return { cell, config };
  });
}

/**
 * Settings that say where and how fast a run goes, not what it computes: a cell that differs from its recorded
 * run only in these is the same cell (a sweep moved to another folder or machine, or given other --threads).
 */
const NOT_RESULTS: readonly (keyof PretrainConfig)[] = [
  'out',
  'threads',
  'workers',
  'device',
  'printFreq',
  'keepCheckpoints',
  'saveEverySteps',
];

/** The settings of `now` that differ from `before` (a run's recorded config.json), as `--epochs 1 → 2`, by flag name. */
export function configChanges(before: Partial<PretrainConfig>, now: PretrainConfig): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(now)] as (keyof PretrainConfig)[]);
  const changes: string[] = [];
  for (const k of keys) {
    if (NOT_RESULTS.includes(k)) continue;
    const [a, b] = [JSON.stringify(before[k]), JSON.stringify(now[k])];
    if (a !== b) changes.push(`${flagOf(k)} ${a ?? '(unset)'} → ${b ?? '(unset)'}`);
  }
  // By flag name: the same list whatever order the config's keys were written in.
  return changes.sort();
}

/** The settings a cell's run directory recorded (config.json), or null when it has not started. */
function recordedConfig(dir: string): Partial<PretrainConfig> | null {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<PretrainConfig>;
  } catch (e) {
    throw new Error(
      `${file}: cannot read the cell's recorded settings (${(e as Error).message}); move the cell directory away to train it anew`,
      { cause: e },
    );
  }
}

function hasCheckpoint(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((f) => /^checkpoint_\d+\.safetensors$/.test(f));
}

interface Child {
  code: number | null;
  out: string;
  err: string;
}

function runCell(job: CellJob, onChild: (kill: (sig: NodeJS.Signals) => void) => void): Promise<Child> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CELL, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
    onChild((sig) => p.kill(sig));
  });
}

function lastJson<T>(c: Child, what: string): T {
  const line = c.out.trim().split('\n').pop() ?? '';
  if (c.code !== 0 || !line.startsWith('{')) {
    throw new Error(`${what} failed (exit ${c.code}): ${c.err.trim().split('\n').slice(-5).join('\n')}`);
  }
  return JSON.parse(line) as T;
}

/** Runs the cells not finished yet, one after another, and writes the tables (also after each cell). */
export async function sweep(o: SweepOptions): Promise<SweepResult> {
  const cells = sweepConfigs(o);
  // Before anything runs: cells started or finished under other settings than these.
  const changed = cells.flatMap(({ cell, config }) => {
    const before = recordedConfig(config.out);
    const diff = before ? configChanges(before, config) : [];
    return diff.length ? [{ cell, dir: config.out, diff }] : [];
  });
  const replaced: Record<string, string> = {};
  if (changed.length && !o.rerunChanged) {
    throw new Error(
      `sweep ${o.out}: ${changed.length} of ${cells.length} cells were run with other settings than this command's, so their results are not this sweep's:\n${changed.map((c) => `  ${c.cell.name}: ${c.diff.join(', ')}`).join('\n')}\nRerun with the earlier settings to continue that sweep, give a new --out for this one, or pass --rerun-changed to move these cells to ${join(o.out, 'replaced')}/ and train them anew`,
    );
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  for (const c of changed) {
    const to = join(o.out, 'replaced', `${c.cell.name}-${stamp}`);
    mkdirSync(join(o.out, 'replaced'), { recursive: true });
    renameSync(c.dir, to);
    replaced[c.cell.name] = to;
  }
  mkdirSync(join(o.out, 'cells'), { recursive: true });
  writeTextAtomic(
    join(o.out, 'sweep-config.json'),
    `${JSON.stringify({ data: o.data, base: o.base, axes: o.axes, linearEpochs: o.linearEpochs ?? 0 }, null, 2)}\n`,
  );
  const log = (s: string): void => {
    if (!o.quiet) process.stderr.write(`moco sweep: ${s}\n`);
  };
  for (const c of changed)
    log(`${c.cell.name}: run before with ${c.diff.join(', ')}; moved to ${replaced[c.cell.name]}, training anew`);
  let signal: string | null = null;
  let kill: ((sig: NodeJS.Signals) => void) | null = null;
  // A signal goes to the running cell, which saves a checkpoint and exits; the sweep then stops.
  const onSignal = (sig: NodeJS.Signals) => (): void => {
    signal = sig;
    kill?.(sig);
  };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);
  const rows: SweepRow[] = [];
  const ran: string[] = [];
  // Each cell's run.json records the sweep's command line, the one that made it.
  const command = process.argv.slice(1);
  // The tables exist (empty) from the start, so that a sweep stopped before its first cell still has them.
  writeSweepTables(o.out, o.axes, rows);
  try {
    for (const [i, { cell, config }] of cells.entries()) {
      const dir = config.out;
      const done = join(dir, CELL_RESULT);
      if (existsSync(done)) {
        rows.push(JSON.parse(readFileSync(done, 'utf8')) as SweepRow);
        log(`[${i + 1}/${cells.length}] ${cell.name}: finished before, not rerun`);
        continue;
      }
      if (signal) break;
      mkdirSync(dir, { recursive: true });
      const resume = hasCheckpoint(dir);
      log(`[${i + 1}/${cells.length}] ${cell.name}: ${resume ? 'resuming' : 'training'} (${dir})`);
      ran.push(cell.name);
      const t0 = performance.now();
      let job: CellJob;
      if (resume) {
        job = { kind: 'pretrain', data: o.data, out: dir, views: o.cellViews, command };
      } else {
        writeTextAtomic(join(dir, 'cell-config.json'), `${JSON.stringify(config, null, 2)}\n`);
        job = { kind: 'pretrain', data: o.data, out: dir, config, views: o.cellViews, command };
      }
      const child = await runCell(job, (k) => {
        kill = k;
      });
      kill = null;
      // A cell stopped by the signal saved a checkpoint, or (still starting) nothing: either way it is rerun.
      if (signal) break;
      const summary = lastJson<PretrainSummary>(child, `cell ${cell.name}: ${resume ? 'resuming' : 'training'}`);
      if (summary.interrupted) {
        signal = summary.interrupted;
        break;
      }
      let linearTop1: number | undefined;
      if (o.linearEpochs && o.linearEpochs > 0) {
        const lc = await runCell(
          {
            kind: 'lincls',
            data: o.data,
            out: dir,
            epochs: o.linearEpochs,
            seed: config.seed,
            threads: config.threads,
          },
          (k) => {
            kill = k;
          },
        );
        kill = null;
        if (signal) break;
        linearTop1 = lastJson<CellLinclsResult>(lc, `cell ${cell.name}: cached-feature linear probe`).top1;
      }
      const row: SweepRow = {
        cell: cell.name,
        values: cell.values,
        mechanism: config.mechanism,
        mlp: config.head === 'mlp',
        augPlus: config.augment === 'mocov2',
        cos: config.cos,
        T: config.T,
        loss: config.mechanism === 'end-to-end' ? config.loss : undefined,
        epochs: summary.epochs,
        steps: summary.steps,
        knnTop1Init: summary.knnTop1Init,
        knnTop1: summary.knnTop1,
        linearTop1,
        imagesPerSec: summary.imagesPerSec,
        peakRssMB: summary.peakRssMB,
        seconds: (performance.now() - t0) / 1000,
        runDir: dir,
      };
      writeTextAtomic(done, `${JSON.stringify(row, null, 2)}\n`);
      rows.push(row);
      writeSweepTables(o.out, o.axes, rows);
      log(
        `[${i + 1}/${cells.length}] ${cell.name}: kNN ${row.knnTop1?.toFixed(2) ?? '–'}%${linearTop1 !== undefined ? `, linear ${linearTop1.toFixed(2)}%` : ''}, ${row.imagesPerSec.toFixed(1)} images/s, peak ${row.peakRssMB.toFixed(0)} MiB`,
      );
    }
  } finally {
    process.off('SIGINT', handlers.SIGINT);
    process.off('SIGTERM', handlers.SIGTERM);
  }
  const files = writeSweepTables(o.out, o.axes, rows);
  if (signal)
    log(`${signal}: stopped after ${rows.length} of ${cells.length} cells; rerun the same command to continue`);
  return {
    rows,
    ran,
    ...(changed.length ? { replaced } : {}),
    ...(signal ? { interrupted: signal as string } : {}),
    files,
  };
}
