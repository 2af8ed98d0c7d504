// Child-process entry of sweep(): one cell's pre-training or its linear probe, in a process of its own so that its
// peak memory is its own and a signal stops just it. argv[2] is the job (a {@link CellJob} as JSON); the last line
// on stdout is the result as JSON. SIGINT/SIGTERM stop a pre-training at a checkpoint (its summary says
// `interrupted`), which the next sweep resumes.
import { pathToFileURL } from 'node:url';
import { setNumThreads } from '../torch/index.js';
import { useDevice } from '../dist/index.js';
import { openDataset } from '../data/index.js';
import { lincls, loadEncoder } from '../eval/index.js';
import { readCheckpoint } from './checkpoint.js';
import { resolveConfig, type PretrainConfig } from './config.js';
import { pretrain, summaryLine, type PretrainSummary } from './pretrain.js';
import { stderrWarner, type TrainObserver, type Warn } from './observer.js';
import type { NeighbourGridRenderer } from './observers/index.js';

/** What a cell process does: pre-train (anew from `config`, or resumed from `out`), or probe a trained cell. */
export type CellJob =
  | {
      kind: 'pretrain';
      data: string;
      /** The run directory; a resumed cell continues from its latest checkpoint with its recorded settings. */
      out: string;
      /** The cell's resolved config (a new cell), or absent to resume. */
      config?: PretrainConfig;
      /** URL of a module with `runObservers(out, warn)` and `neighbourGrid` (views/run-views.ts), if any. */
      views?: string;
      /** Recorded in run.json: the sweep's command line. */
      command: string[];
    }
  | {
      kind: 'lincls';
      data: string;
      /** The trained cell's run directory. */
      out: string;
      epochs: number;
      seed: number;
      threads: number;
    };

/** The result line of a `lincls` job: top-1 in percent of the best epoch (else the last). */
export interface CellLinclsResult {
  top1: number;
}

/** What a views module offers a run (views/run-views.ts). */
interface RunViews {
  runObservers(out: string, warn: Warn): TrainObserver[];
  neighbourGrid?: NeighbourGridRenderer;
}

async function runPretrain(job: Extract<CellJob, { kind: 'pretrain' }>): Promise<PretrainSummary> {
  const resume = job.config ? undefined : readCheckpoint(job.out);
  const config = job.config ?? resolveConfig(job.data, { out: job.out }, resume!.config);
  useDevice(config.device);
  const views = job.views ? ((await import(job.views)) as RunViews) : null;
  return pretrain(config, {
    resume,
    quiet: true,
    handleSignals: true,
    command: job.command,
    observers: views ? views.runObservers(config.out, stderrWarner(true)) : [],
    neighbourGrid: views?.neighbourGrid,
  });
}

async function runLincls(job: Extract<CellJob, { kind: 'lincls' }>): Promise<CellLinclsResult> {
  setNumThreads(job.threads);
  const encoder = loadEncoder(job.out);
  try {
    const r = await lincls(
      encoder,
      openDataset(job.data, { split: 'train' }),
      openDataset(job.data, { split: 'test' }),
      {
        epochs: job.epochs,
        seed: job.seed,
        cacheFeatures: true,
        onLog: (l) => console.error(`moco sweep: lincls: ${l}`),
      },
    );
    return { top1: r.best?.top1 ?? r.last.top1 };
  } finally {
    encoder.dispose();
  }
}

/** Runs `job`, printing its result as the last line on stdout. */
export async function runCellJob(job: CellJob): Promise<void> {
  const result = job.kind === 'pretrain' ? summaryLine(await runPretrain(job)) : JSON.stringify(await runLincls(job));
  console.log(result);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  Promise.resolve()
    .then(() => runCellJob(JSON.parse(process.argv[2] ?? '') as CellJob))
    .catch((e: unknown) => {
      console.error(`moco sweep: cell: ${(e as Error).message}`);
      process.exit(1);
    });
}
