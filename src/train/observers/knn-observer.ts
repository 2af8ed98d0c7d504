// The kNN monitor as an observer: the random encoder before the first step, every --knn-every epochs, and at
// the end of the run; each evaluation is a metrics row and, given a renderer, a nearest-neighbour grid image.
import type { ImageDataset } from '../../data/index.js';
import type { Backbone } from '../../models/index.js';
import type { PretrainConfig } from '../config.js';
import type { RunState } from '../checkpoint.js';
import type { StepMetrics } from '../metrics.js';
import { knnMonitorRun, type KnnMonitorResult } from '../knn-monitor.js';
import type { EpochEvent, TrainObserver, Warn } from '../observer.js';
import type { RunLogObserver } from './run-log-observer.js';

/**
 * Draws a kNN evaluation's queries and their nearest bank images as one PNG (views' renderNeighbourGrid): a
 * picture is a view, so the caller that wants one passes it in (the CLI does).
 */
export type NeighbourGridRenderer = (queries: ImageDataset, bank: ImageDataset, queryIdx: readonly number[], neighbours: readonly (readonly number[])[]) =>
  Promise<{ png: Buffer; width: number; height: number }>;

export class KnnObserver implements TrainObserver {
  /** Percent, after the latest evaluation. */
  top1?: number;
  /** Percent: the freshly initialised encoder (new runs only). */
  top1Init?: number;
  private lastStep = -1;

  constructor(private readonly c: PretrainConfig, private readonly model: { encoderQ: Backbone }, private readonly data: { bank: ImageDataset; queries: ImageDataset },
    private readonly log: RunLogObserver | null, private readonly note: (line: string) => void, private readonly warn: Warn,
    private readonly epochLr: (epoch: number) => number, private readonly elapsed: () => number, private readonly renderGrid?: NeighbourGridRenderer) {}

  private async record(r: KnnMonitorResult, row: StepMetrics): Promise<void> {
    if (!this.log) return;
    this.log.row(row);
    if (!this.renderGrid) return;
    try {
      const g = await this.renderGrid(this.data.queries, this.data.bank, r.queryIdx, r.neighbours);
      this.log.log.image('eval/knn_neighbours', 'knn-neighbours.png', g.png, g.width, g.height, row.step);
    } catch (e) { this.warn('nearest-neighbour grid', e); }
  }

  private run(): Promise<KnnMonitorResult> { return knnMonitorRun(this.model, this.data.bank, this.data.queries, this.c); }

  async start(state: RunState): Promise<void> {
    if (state.step !== 0) return;
    const r = await this.run();
    this.top1Init = r.top1;
    this.note(`before training: kNN top-1 ${r.top1.toFixed(2)}% (random encoder)`);
    await this.record(r, { epoch: 0, step: 0, loss: NaN, lr: 0, imagesPerSec: 0, elapsed: 0, knnTop1: r.top1 });
  }

  async epochEnd(e: EpochEvent): Promise<void> {
    if (e.state.batch !== 0 || e.state.epoch % this.c.knnEvery !== 0) return;
    const r = await this.run();
    this.top1 = r.top1;
    this.lastStep = e.state.step;
    this.note(`epoch ${e.epoch}: kNN top-1 ${r.top1.toFixed(2)}%`);
    await this.record(r, { epoch: e.epoch, step: e.state.step, loss: e.lastLoss, lr: e.lr, imagesPerSec: 0, elapsed: this.elapsed(), knnTop1: r.top1 });
  }

  async finished(state: RunState, lastLoss: number): Promise<void> {
    if (this.lastStep === state.step) return;
    const r = await this.run();
    this.top1 = r.top1;
    await this.record(r, { epoch: state.epoch, step: state.step, loss: lastLoss, lr: this.epochLr(Math.min(state.epoch, this.c.epochs - 1)), imagesPerSec: 0, elapsed: this.elapsed(), knnTop1: r.top1 });
  }
}
