// The kNN monitor as an observer: the random encoder before the first step, every --knn-every epochs, and at
// the end of the run; each evaluation is a metrics row and, given a renderer, a nearest-neighbour grid image.
import type { ImageDataset } from '../../data/index.js';
import type { StepMetrics } from '../metrics.js';
import { knnMonitorRun, type KnnMonitorResult } from '../knn-monitor.js';
import type { EpochEvent, PretrainContext, TrainObserver } from '../observer.js';
import type { RunLogObserver } from './run-log-observer.js';

/**
 * Draws a kNN evaluation's queries and their nearest bank images as one PNG (views' renderNeighbourGrid): a
 * picture is a view, so the caller that wants one passes it in (the CLI does).
 */
export type NeighbourGridRenderer = (
  queries: ImageDataset,
  bank: ImageDataset,
  queryIdx: readonly number[],
  neighbours: readonly (readonly number[])[],
) => Promise<{ png: Buffer; width: number; height: number }>;

export interface KnnObserverOptions {
  /** The labelled images searched (the training set) and those classified (the test split). */
  data: { bank: ImageDataset; queries: ImageDataset };
  /** Where each evaluation becomes a metrics row (and its grid an image); none: only the progress line. */
  runLog?: RunLogObserver | null;
  /** Draws each evaluation's nearest-neighbour grid into the run log; none by default. */
  renderGrid?: NeighbourGridRenderer;
}

export class KnnObserver implements TrainObserver {
  /** Percent, after the latest evaluation. */
  top1?: number;
  /** Percent: the freshly initialised encoder (new runs only). */
  top1Init?: number;
  private lastStep = -1;

  constructor(private readonly o: KnnObserverOptions) {}

  private async record(ctx: PretrainContext, r: KnnMonitorResult, row: StepMetrics): Promise<void> {
    const log = this.o.runLog;
    if (!log) return;
    await log.evaluationRow(ctx, row);
    if (!this.o.renderGrid) return;
    try {
      const g = await this.o.renderGrid(this.o.data.queries, this.o.data.bank, r.queryIdx, r.neighbours);
      log.log.image('eval/knn_neighbours', 'knn-neighbours.png', g.png, g.width, g.height, row.step);
    } catch (e) {
      ctx.warn('nearest-neighbour grid', e);
    }
  }

  private run(ctx: PretrainContext): Promise<KnnMonitorResult> {
    return knnMonitorRun(ctx.model, this.o.data.bank, this.o.data.queries, ctx.config);
  }

  async start(ctx: PretrainContext): Promise<void> {
    if (ctx.state.step !== 0) return;
    const r = await this.run(ctx);
    this.top1Init = r.top1;
    ctx.log(`before training: kNN top-1 ${r.top1.toFixed(2)}% (random encoder)`);
    await this.record(ctx, r, { epoch: 0, step: 0, loss: NaN, lr: 0, imagesPerSec: 0, elapsed: 0, knnTop1: r.top1 });
  }

  async epochEnd(ctx: PretrainContext, e: EpochEvent): Promise<void> {
    if (e.state.batch !== 0 || e.state.epoch % ctx.config.knnEvery !== 0) return;
    const r = await this.run(ctx);
    this.top1 = r.top1;
    this.lastStep = e.state.step;
    ctx.log(`epoch ${e.epoch}: kNN top-1 ${r.top1.toFixed(2)}%`);
    const row = {
      epoch: e.epoch,
      step: e.state.step,
      loss: e.lastLoss,
      lr: e.lr,
      imagesPerSec: 0,
      elapsed: ctx.elapsed(),
    };
    await this.record(ctx, r, { ...row, knnTop1: r.top1 });
  }

  async finished(ctx: PretrainContext): Promise<void> {
    const { state, config: c } = ctx;
    if (this.lastStep === state.step) return;
    const r = await this.run(ctx);
    this.top1 = r.top1;
    const lr = ctx.lr(Math.min(state.epoch, c.epochs - 1));
    const row = {
      epoch: state.epoch,
      step: state.step,
      loss: ctx.lastLoss,
      lr,
      imagesPerSec: 0,
      elapsed: ctx.elapsed(),
    };
    await this.record(ctx, r, { ...row, knnTop1: r.top1 });
  }
}
