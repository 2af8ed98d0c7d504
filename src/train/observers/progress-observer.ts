// The progress bar (a terminal) or a line every --print-freq steps (a log file), as an observer.
import { Progress } from '../progress.js';
import type { RunEnd, StepEvent, TrainObserver } from '../observer.js';

export class ProgressObserver implements TrainObserver {
  private readonly progress: Progress;

  constructor(totalSteps: number, fromStep: number, printFreq: number, enabled: boolean) {
    this.progress = new Progress(totalSteps, fromStep, printFreq, enabled);
  }

  /** A line above the bar (kNN results, where a checkpoint went). */
  log(line: string): void { this.progress.log(line); }

  step(e: StepEvent): void {
    this.progress.update(e.step, { epoch: e.epoch, loss: e.loss, lr: e.lr, imagesPerSec: e.imagesPerSec });
  }

  close(_end: RunEnd): void { this.progress.stop(); }
}
