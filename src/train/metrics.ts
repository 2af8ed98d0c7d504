// Per-step metrics of a run, appended to metrics.jsonl and metrics.csv in the run directory.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface StepMetrics {
  epoch: number;
  step: number;
  loss: number;
  lr: number;
  /** Training images a second over the last logging window. */
  imagesPerSec: number;
  /** Wall-clock seconds since the run (or its resumption) started. */
  elapsed: number;
  knnTop1?: number;
}

const COLUMNS: (keyof StepMetrics)[] = ['epoch', 'step', 'loss', 'lr', 'imagesPerSec', 'elapsed', 'knnTop1'];

export class MetricsWriter {
  private readonly jsonl: string;
  private readonly csv: string;

  /** On resume, rows after `fromStep` (written after the checkpoint being resumed) are dropped. */
  constructor(dir: string, fromStep = 0) {
    this.jsonl = join(dir, 'metrics.jsonl');
    this.csv = join(dir, 'metrics.csv');
    if (fromStep > 0 && existsSync(this.jsonl)) {
      const rows = readFileSync(this.jsonl, 'utf8').split('\n').filter((l) => l && (JSON.parse(l) as StepMetrics).step <= fromStep);
      writeFileSync(this.jsonl, rows.map((r) => `${r}\n`).join(''));
      writeFileSync(this.csv, `${COLUMNS.join(',')}\n${rows.map((r) => `${toCsv(JSON.parse(r) as StepMetrics)}\n`).join('')}`);
    } else {
      writeFileSync(this.jsonl, '');
      writeFileSync(this.csv, `${COLUMNS.join(',')}\n`);
    }
  }

  write(m: StepMetrics): void {
    appendFileSync(this.jsonl, `${JSON.stringify(m)}\n`);
    appendFileSync(this.csv, `${toCsv(m)}\n`);
  }
}

function toCsv(m: StepMetrics): string {
  return COLUMNS.map((c) => (m[c] === undefined ? '' : String(m[c]))).join(',');
}
