// The sweep's tables: sweep.json (every row), sweep.csv, and sweep.md, whose rows read like the MoCo v2 report's
// ablation table (MLP, aug+, cos, τ, mechanism → accuracy, images/s, peak memory).
import { join } from 'node:path';
import { writeTextAtomic } from '../io/atomic.js';
import { csvText, type CsvValue } from '../io/csv.js';
import type { GridAxis } from './sweep-grid.js';

/** One finished cell. */
export interface SweepRow {
  cell: string;
  /** Grid key → value of this cell. */
  values: Record<string, string>;
  mechanism: string;
  mlp: boolean;
  /** The MoCo v2 augmentation (blur added). */
  augPlus: boolean;
  cos: boolean;
  /** Temperature τ. */
  T: number;
  /** End-to-end's loss. */
  loss?: string;
  epochs: number;
  steps: number;
  /** Percent: kNN top-1 of the random encoder and of the trained one. */
  knnTop1Init?: number;
  knnTop1?: number;
  /** Percent: best epoch of the cached-feature linear probe (with --linear). */
  linearTop1?: number;
  /** Training images a second after warm-up (data loading included). */
  imagesPerSec: number;
  /** Peak resident memory of the training process, MiB. */
  peakRssMB: number;
  /** Wall-clock seconds of the cell (training and evaluation). */
  seconds: number;
  runDir: string;
}

const pct = (v: number | undefined): string => (v === undefined ? '–' : v.toFixed(2));
const mark = (b: boolean): string => (b ? '✓' : '');

/** A row value as a CSV cell: a missing one empty, a flag `true`/`false`. */
const cell = (v: string | number | boolean | undefined): CsvValue =>
  v === undefined ? null : typeof v === 'boolean' ? String(v) : v;

/** The markdown table: one row a cell, in grid order. */
export function sweepMarkdown(rows: SweepRow[]): string {
  const head =
    '| cell | mechanism | MLP | aug+ | cos | τ | kNN top-1 % (random init) | linear top-1 % | images/s | peak RSS MiB | epochs |';
  const sep = '| --- | --- | :-: | :-: | :-: | --: | --: | --: | --: | --: | --: |';
  const body = rows.map(
    (r) =>
      `| ${r.cell} | ${r.mechanism}${r.loss && r.loss !== 'infonce' ? ` (${r.loss})` : ''} | ${mark(r.mlp)} | ${mark(r.augPlus)} | ${mark(r.cos)} | ${r.T} | ${pct(r.knnTop1)} (${pct(r.knnTop1Init)}) | ${pct(r.linearTop1)} | ${r.imagesPerSec.toFixed(1)} | ${r.peakRssMB.toFixed(0)} | ${Number(r.epochs.toFixed(2))} |`,
  );
  return [head, sep, ...body].join('\n') + '\n';
}

/** Writes sweep.json, sweep.csv and sweep.md into `dir`; returns their paths. */
export function writeSweepTables(
  dir: string,
  axes: GridAxis[],
  rows: SweepRow[],
): { json: string; csv: string; md: string } {
  const files = { json: join(dir, 'sweep.json'), csv: join(dir, 'sweep.csv'), md: join(dir, 'sweep.md') };
  writeTextAtomic(files.json, `${JSON.stringify(rows, null, 2)}\n`);
  const keys = axes.map((a) => a.key);
  const cols = [
    'mechanism',
    'mlp',
    'augPlus',
    'cos',
    'T',
    'loss',
    'epochs',
    'steps',
    'knnTop1Init',
    'knnTop1',
    'linearTop1',
    'imagesPerSec',
    'peakRssMB',
    'seconds',
    'runDir',
  ] as const;
  const header = ['cell', ...keys.map((k) => `grid.${k}`), ...cols];
  const cells = rows.map((r) => [r.cell, ...keys.map((k) => r.values[k]), ...cols.map((c) => r[c])].map(cell));
  writeTextAtomic(files.csv, csvText(header, cells));
  writeTextAtomic(files.md, sweepMarkdown(rows));
  return files;
}
