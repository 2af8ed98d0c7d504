// The run's report.html as an observer of the training loop: written however the run ends (finished,
// interrupted, diverged or failed), after the run log has been closed, so that it shows the last rows.
import { join } from 'node:path';
import type { RunEnd, TrainObserver, Warn } from '../train/index.js';
import { writeReport } from './report.js';

export class ReportObserver implements TrainObserver {
  /**
   * @param out the run directory (`--out`); the report goes to `out/report.html`.
   * @param warn told when the page cannot be written (never fatal: the checkpoints are what must not fail).
   */
  constructor(
    private readonly out: string,
    private readonly warn: Warn = () => undefined,
  ) {}

  close(_ctx: unknown, _end: RunEnd): void {
    try {
      writeReport([this.out], join(this.out, 'report.html'));
    } catch (e) {
      this.warn('report.html', e);
    }
  }
}
