// What a run leaves to watch it by: metrics.jsonl/.csv (one row a step), TensorBoard event files (the same values
// and images, histograms, the config) and run.json (the command, versions, device, times and final state).
import { readFileSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { EventWriter, type Histogram } from '../io/tfevents.js';
import { writeTextAtomic } from '../io/atomic.js';
import { noGrad, onesLike, tidy, version as torchVersion, zeros, zerosLike, type Tensor } from '../torch/index.js';
import { MetricsWriter, type StepMetrics } from './metrics.js';

/** How a run ended: still going (or killed without a chance to say), finished, stopped by a signal, or a non-finite loss. */
export type RunOutcome = 'running' | 'finished' | 'interrupted' | 'diverged';

/** run.json: what a report's header shows. Times are ISO 8601 (UTC); durations seconds. */
export interface RunInfo {
  /** The command line (argv after node), as typed. */
  command: string[];
  versions: { mocoTs: string; node: string; libtorch: string };
  device: string;
  host: string;
  /** When the run directory was first started (kept across resumes). */
  started: string;
  /** When this run (or its last resumption) ended; absent while running. */
  ended?: string;
  /** Wall seconds of all sessions together. */
  durationS: number;
  state: RunOutcome;
  /** Why it stopped, for interrupted and diverged runs. */
  reason?: string;
  steps: number;
  /** Optimizer steps an epoch (for an epoch axis). */
  stepsPerEpoch: number;
  /** Steps the run was configured for (--epochs, or --max-steps when smaller). */
  totalSteps: number;
  /** Sessions: 1 + the number of resumes. */
  sessions: number;
}

/** This package's version (package.json). */
export function packageVersion(): string {
  const req = createRequire(import.meta.url);
  for (const p of ['../../package.json', '../../../package.json']) {
    try {
      return (req(p) as { version: string }).version;
    } catch {
      /* the other layout (src/ vs dist/src/) */
    }
  }
  return 'unknown';
}

/** run.json of a run directory, or null when it has none (runs from before it existed). */
export function readRunInfo(dir: string): RunInfo | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunInfo;
  } catch {
    return null;
  }
}

/** The TensorBoard event files of a run directory, in the order TensorBoard reads them (by name). */
export function eventFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith('events.out.tfevents.'))
    .sort()
    .map((f) => join(dir, f));
}

/** Writes a run's metrics rows, TensorBoard events and run.json (main process only). */
export class RunLog {
  readonly metrics: MetricsWriter;
  readonly events: EventWriter;
  private info: RunInfo;
  private readonly sessionStart = Date.now();
  private readonly previousS: number;

  /** `fromStep` > 0: a resumption — metrics after it are dropped, and the new event file starts with a SessionLog START. */
  constructor(
    readonly dir: string,
    o: { fromStep: number; device: string; stepsPerEpoch: number; totalSteps: number; command?: string[] },
  ) {
    this.metrics = new MetricsWriter(dir, o.fromStep);
    this.events = new EventWriter(dir);
    // TensorBoard purges events at or after a START's step: the first step this session writes.
    if (o.fromStep > 0) this.events.sessionStart(o.fromStep + 1);
    const prev = o.fromStep > 0 ? readRunInfo(dir) : null;
    this.previousS = prev?.durationS ?? 0;
    this.info = {
      command: o.command ?? process.argv.slice(1),
      versions: { mocoTs: packageVersion(), node: process.version, libtorch: torchVersion },
      device: o.device,
      host: hostname(),
      started: prev?.started ?? new Date(this.sessionStart).toISOString(),
      durationS: this.previousS,
      state: 'running',
      steps: o.fromStep,
      stepsPerEpoch: o.stepsPerEpoch,
      totalSteps: o.totalSteps,
      sessions: (prev?.sessions ?? 0) + 1,
    };
    this.writeInfo();
  }

  /**
   * A metrics row and its scalars: train/* and perf/* (and eval/online_top1) for a step row; eval/knn_top1 (and
   * eval/online_val_top1) for an evaluation row.
   */
  row(m: StepMetrics): void {
    this.metrics.write(m);
    const e = this.events;
    if (m.knnTop1 !== undefined) {
      e.scalar('eval/knn_top1', m.knnTop1, m.step);
      if (m.onlineValTop1 !== undefined) e.scalar('eval/online_val_top1', m.onlineValTop1, m.step);
      return;
    }
    e.scalar('train/loss', m.loss, m.step);
    e.scalar('train/lr', m.lr, m.step);
    if (m.acc1 !== undefined) e.scalar('train/acc1', m.acc1, m.step);
    if (m.acc5 !== undefined) e.scalar('train/acc5', m.acc5, m.step);
    e.scalar('perf/images_per_s', m.imagesPerSec, m.step);
    if (m.dataMs !== undefined) e.scalar('perf/data_ms', m.dataMs, m.step);
    if (m.stepMs !== undefined) e.scalar('perf/step_ms', m.stepMs, m.step);
    if (m.embedStd !== undefined) e.scalar('embed/std', m.embedStd, m.step);
    if (m.onlineTop1 !== undefined) e.scalar('eval/online_top1', m.onlineTop1, m.step);
    this.info.steps = m.step;
  }

  histogram(tag: string, h: Histogram, step: number): void {
    this.events.histogram(tag, h, step);
  }

  /** A PNG image: into the event file, and as `file` in the run directory (the report shows the latest). */
  image(tag: string, file: string, png: Uint8Array, width: number, height: number, step: number): void {
    this.events.image(tag, png, width, height, step);
    writeTextAtomic(join(this.dir, file), png);
  }

  text(tag: string, markdown: string, step: number): void {
    this.events.text(tag, markdown, step);
  }

  /** Flushes events and updates run.json (every epoch end and checkpoint). */
  flush(): void {
    this.events.flush();
    this.info.durationS = this.previousS + (Date.now() - this.sessionStart) / 1000;
    this.writeInfo();
  }

  /** Records how the run ended, flushes and closes the event file. */
  close(state: RunOutcome, reason?: string): void {
    this.info.state = state;
    if (reason) this.info.reason = reason;
    else delete this.info.reason;
    this.info.ended = new Date().toISOString();
    try {
      this.flush();
    } finally {
      this.events.close();
    }
  }

  private writeInfo(): void {
    writeTextAtomic(join(this.dir, 'run.json'), `${JSON.stringify(this.info, null, 2)}\n`);
  }
}

/**
 * A histogram of a tensor's values, counted on its device (equal-width buckets from min to max): a step's N×K
 * negative logits need not travel to JavaScript. `bins` default 30.
 */
export function tensorHistogram(x: Tensor, bins = 30): Histogram {
  return noGrad(() =>
    tidy(() => {
      const v = x.detach().flatten().float();
      const n = v.shape[0]!;
      const min = v.min().item(),
        max = v.max().item();
      const sum = v.sum().item(),
        sumSquares = v.mul(v).sum().item();
      const b = max > min ? bins : 1;
      const width = (max - min) / b;
      const idx =
        width > 0
          ? v
              .sub(min)
              .div(width)
              .floor()
              .clamp(0, b - 1)
              .long()
          : zerosLike(v, { dtype: 'int64' });
      const counts = zeros([b], { device: v.device }).scatterAdd(0, idx, onesLike(v)).cpu().toArray();
      const bucketLimit = counts.map((_, i) => (i === b - 1 ? max : min + (i + 1) * width));
      return { min, max, num: n, sum, sumSquares, bucketLimit, bucket: counts };
    }),
  );
}
