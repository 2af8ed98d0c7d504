// What a run report shows, gathered from a run directory: config.json, run.json, metrics.jsonl, the checkpoints,
// the PNGs the run wrote (augmentation preview, nearest-neighbour grid) and a lincls.json of a linear probe in it.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readMetrics, type StepMetrics } from '../train/metrics.js';
import { readRunInfo, type RunInfo } from '../train/run-log.js';

/** Column arrays of a run's step rows (null where a row lacks the value). */
export interface StepSeries {
  step: number[];
  /** Fractional epochs: step / steps an epoch. */
  epoch: number[];
  /** Wall seconds since the run first started, summed over resumed sessions. */
  wall: number[];
  loss: (number | null)[];
  acc1: (number | null)[];
  acc5: (number | null)[];
  lr: (number | null)[];
  imagesPerSec: (number | null)[];
  dataMs: (number | null)[];
  stepMs: (number | null)[];
  embedStd: (number | null)[];
  /** The online probe's running training top-1 (--online-probe; null on the rows between its figures). */
  onlineTop1: (number | null)[];
}

/** The kNN monitor's evaluations (step 0: the random encoder). */
export interface KnnSeries {
  step: number[];
  epoch: number[];
  wall: number[];
  top1: number[];
  /** The online probe on the test split at the same evaluations (--online-probe; null without it, and at step 0). */
  onlineValTop1: (number | null)[];
}

export interface ReportCheckpoint {
  name: string;
  bytes: number;
  /** ISO 8601 modification time. */
  modified: string;
  /** The one `last` points at. */
  last: boolean;
}

/** A linear probe's result (lincls.json) found in the run directory or a folder directly inside it. */
export interface ReportLincls {
  folder: string;
  protocol: string;
  epochs: number;
  bestTop1: number | null;
  lastTop1: number;
  lastTop5: number;
}

export interface ReportRun {
  /** Short name (the directory's name). */
  name: string;
  dir: string;
  config: Record<string, unknown>;
  /** null for runs written before run.json existed. */
  info: RunInfo | null;
  stepsPerEpoch: number;
  steps: StepSeries;
  knn: KnnSeries;
  checkpoints: ReportCheckpoint[];
  lincls: ReportLincls[];
  /** PNG bytes of the augmentation preview and of the latest nearest-neighbour grid, when the run wrote them. */
  images: { augmentPreview?: Buffer; knnNeighbours?: Buffer };
  summary: ReportSummary;
}

/** The numbers a report's cards and comparison table show. */
export interface ReportSummary {
  stepsDone: number;
  finalLoss: number | null;
  finalAcc1: number | null;
  knnBest: number | null;
  knnLast: number | null;
  knnInit: number | null;
  linearTop1: number | null;
  /** The online probe's last test-split top-1, else its last training top-1 (--online-probe); null without it. */
  onlineTop1: number | null;
  /** Median of the per-step images/s after the first two steps of each session. */
  imagesPerSec: number | null;
  durationS: number | null;
}

const finite = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function median(xs: number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function readLincls(dir: string): ReportLincls[] {
  const folders = [
    dir,
    ...readdirSync(dir)
      .map((f) => join(dir, f))
      .filter((p) => statSync(p).isDirectory()),
  ];
  const out: ReportLincls[] = [];
  for (const f of folders) {
    const p = join(f, 'lincls.json');
    if (!existsSync(p)) continue;
    try {
      const r = JSON.parse(readFileSync(p, 'utf8')) as {
        protocol: string;
        epochs: number;
        best: { top1: number } | null;
        last: { top1: number; top5: number };
      };
      out.push({
        folder: f === dir ? '.' : basename(f),
        protocol: r.protocol,
        epochs: r.epochs,
        bestTop1: r.best?.top1 ?? null,
        lastTop1: r.last.top1,
        lastTop5: r.last.top5,
      });
    } catch (e) {
      throw new Error(`${p}: not a lincls result (${(e as Error).message})`, { cause: e });
    }
  }
  return out;
}

/** Reads a run directory for a report; a folder that is not one gets an error naming it and what it lacks. */
export function loadReportRun(dir: string): ReportRun {
  const d = resolve(dir);
  if (!existsSync(d) || !statSync(d).isDirectory())
    throw new Error(`run '${dir}' not found: pass the run directory of a moco pretrain run (its --out)`);
  const cfgPath = join(d, 'config.json');
  if (!existsSync(cfgPath) || !existsSync(join(d, 'metrics.jsonl'))) {
    throw new Error(
      `'${dir}' is not a run directory: it needs config.json and metrics.jsonl, as moco pretrain writes them`,
    );
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${cfgPath}: not JSON (${(e as Error).message})`, { cause: e });
  }
  const info = readRunInfo(d);
  const rows = readMetrics(d);
  const stepRows = rows.filter((r) => r.knnTop1 === undefined);
  const bpe = info?.stepsPerEpoch ?? estimateStepsPerEpoch(stepRows);
  // elapsed restarts at 0 in each resumed session: carry the previous sessions' time over.
  const wallOf = new Map<StepMetrics, number>();
  let offset = 0,
    prev = -1;
  for (const r of rows) {
    if (r.elapsed + 1e-9 < prev) offset += prev;
    prev = r.elapsed;
    wallOf.set(r, offset + r.elapsed);
  }
  const col = (k: keyof StepMetrics): (number | null)[] => stepRows.map((r) => finite(r[k]));
  const steps: StepSeries = {
    step: stepRows.map((r) => r.step),
    epoch: stepRows.map((r) => r.step / bpe),
    wall: stepRows.map((r) => wallOf.get(r)!),
    loss: col('loss'),
    acc1: col('acc1'),
    acc5: col('acc5'),
    lr: col('lr'),
    imagesPerSec: col('imagesPerSec'),
    dataMs: col('dataMs'),
    stepMs: col('stepMs'),
    embedStd: col('embedStd'),
    onlineTop1: col('onlineTop1'),
  };
  const knnRows = rows.filter((r) => r.knnTop1 !== undefined);
  const knn: KnnSeries = {
    step: knnRows.map((r) => r.step),
    epoch: knnRows.map((r) => r.step / bpe),
    wall: knnRows.map((r) => wallOf.get(r)!),
    top1: knnRows.map((r) => r.knnTop1!),
    onlineValTop1: knnRows.map((r) => finite(r.onlineValTop1)),
  };
  const lastName = existsSync(join(d, 'last')) ? readFileSync(join(d, 'last'), 'utf8').trim() : '';
  const checkpoints = readdirSync(d)
    .filter((f) => /^checkpoint.*\.(safetensors|pth\.tar|pth)$/.test(f))
    .sort()
    .map((name) => {
      const st = statSync(join(d, name));
      return { name, bytes: st.size, modified: st.mtime.toISOString(), last: name === lastName };
    });
  const png = (f: string): Buffer | undefined => (existsSync(join(d, f)) ? readFileSync(join(d, f)) : undefined);
  const lincls = readLincls(d);
  // Throughput of steady steps: the first two of each session warm up (allocations, first kernels).
  const ips: number[] = [];
  let sinceStart = 0;
  for (let i = 0; i < stepRows.length; i++) {
    sinceStart = i > 0 && stepRows[i]!.elapsed < stepRows[i - 1]!.elapsed ? 0 : sinceStart + 1;
    const v = finite(stepRows[i]!.imagesPerSec);
    if (sinceStart > 2 && v !== null && v > 0) ips.push(v);
  }
  const lastStep = stepRows.at(-1);
  const linear = lincls.map((l) => l.bestTop1 ?? l.lastTop1);
  const summary: ReportSummary = {
    stepsDone: lastStep?.step ?? 0,
    finalLoss: finite(lastStep?.loss),
    finalAcc1: finite(lastStep?.acc1),
    knnBest: knnRows.length ? Math.max(...knn.top1.filter((_, i) => knn.step[i]! > 0), -Infinity) : null,
    knnLast: knnRows.length ? knn.top1.at(-1)! : null,
    knnInit: knnRows.find((r) => r.step === 0)?.knnTop1 ?? null,
    linearTop1: linear.length ? Math.max(...linear) : null,
    onlineTop1:
      knn.onlineValTop1.filter((v) => v !== null).at(-1) ?? steps.onlineTop1.filter((v) => v !== null).at(-1) ?? null,
    imagesPerSec: median(ips),
    durationS: info?.durationS ?? (rows.length ? wallOf.get(rows.at(-1)!)! : null),
  };
  if (summary.knnBest === -Infinity) summary.knnBest = null;
  return {
    name: basename(d),
    dir: d,
    config,
    info,
    stepsPerEpoch: bpe,
    steps,
    knn,
    checkpoints,
    lincls,
    images: { augmentPreview: png('augment-preview.png'), knnNeighbours: png('knn-neighbours.png') },
    summary,
  };
}

/** Steps an epoch from the rows when run.json does not say: the most steps any one epoch logged. */
function estimateStepsPerEpoch(rows: StepMetrics[]): number {
  const counts = new Map<number, number>();
  for (const r of rows) counts.set(r.epoch, (counts.get(r.epoch) ?? 0) + 1);
  return Math.max(1, ...counts.values());
}
