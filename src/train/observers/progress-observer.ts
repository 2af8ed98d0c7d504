// The progress bar (a terminal) or a line every --print-freq steps (a log file), as an observer.
import { Progress } from '../progress.js';
import type { RunEnd, StepEvent, TrainObserver } from '../observer.js';

export interface ProgressObserverOptions {
  /** Steps of the whole run. */
  totalSteps: number;
  /** Steps done before this run (a resumed one); default 0. */
  fromStep?: number;
  /** Steps between lines when stderr is not a terminal. */
  printFreq: number;
  /** Show anything at all; default true. */
  enabled?: boolean;
}

export class ProgressObserver implements TrainObserver {
  private readonly progress: Progress;

  constructor(o: ProgressObserverOptions) {
    this.progress = new Progress(o.totalSteps, o.fromStep ?? 0, o.printFreq, o.enabled ?? true);
  }

  /** A line above the bar (kNN results, where a checkpoint went). */
  log(line: string): void {
    this.progress.log(line);
  }

  step(_ctx: unknown, e: StepEvent): void {
    this.progress.update(e.step, { epoch: e.epoch, loss: e.loss, lr: e.lr, imagesPerSec: e.imagesPerSec });
  }

  close(_ctx: unknown, _end: RunEnd): void {
    this.progress.stop();
  }
}
