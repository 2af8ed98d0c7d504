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
  /** Percent, the kNN monitor (rows of an evaluation; step 0: the random encoder). */
  knnTop1?: number;
  /** Percent of the batch whose positive key has the largest logit among the 1+K (main_moco.py's acc@1). */
  acc1?: number;
  /** Percent of the batch whose positive key is among the 5 largest logits (acc@5). */
  acc5?: number;
  /** Milliseconds this step waited for its batch (data loading and augmentation not hidden by prefetch). */
  dataMs?: number;
  /** Milliseconds of the step itself: forward, backward, gradient averaging, optimizer. */
  stepMs?: number;
  /** Mean over dimensions of the batch standard deviation of the L2-normalised queries: ≈ 1/√dim healthy, → 0 on collapse. */
  embedStd?: number;
  /**
   * Percent: the online linear probe's top-1 on its training batches so far this epoch (--online-probe; step rows
   * every --print-freq steps and at an epoch's last step).
   */
  onlineTop1?: number;
  /** Percent: the online linear probe on the labelled test split (--online-probe; the kNN monitor's rows). */
  onlineValTop1?: number;
}

// New columns go at the end, so readers of older files keep their column positions.
const COLUMNS: (keyof StepMetrics)[] = [
  'epoch',
  'step',
  'loss',
  'lr',
  'imagesPerSec',
  'elapsed',
  'knnTop1',
  'acc1',
  'acc5',
  'dataMs',
  'stepMs',
  'embedStd',
  'onlineTop1',
  'onlineValTop1',
];

/** The rows of a run directory's metrics.jsonl (empty when it has none). */
export function readMetrics(dir: string): StepMetrics[] {
  const p = join(dir, 'metrics.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l, i) => {
      try {
        return JSON.parse(l) as StepMetrics;
      } catch (e) {
        throw new Error(`${p}:${i + 1}: not a JSON line (${(e as Error).message})`, { cause: e });
      }
    });
}

export class MetricsWriter {
  private readonly jsonl: string;
  private readonly csv: string;

  /** On resume, rows after `fromStep` (written after the checkpoint being resumed) are dropped. */
  constructor(dir: string, fromStep = 0) {
    this.jsonl = join(dir, 'metrics.jsonl');
    this.csv = join(dir, 'metrics.csv');
    if (fromStep > 0 && existsSync(this.jsonl)) {
      const rows = readFileSync(this.jsonl, 'utf8')
        .split('\n')
        .filter((l) => l && (JSON.parse(l) as StepMetrics).step <= fromStep);
      writeFileSync(this.jsonl, rows.map((r) => `${r}\n`).join(''));
      writeFileSync(
        this.csv,
        `${COLUMNS.join(',')}\n${rows.map((r) => `${toCsv(JSON.parse(r) as StepMetrics)}\n`).join('')}`,
      );
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
