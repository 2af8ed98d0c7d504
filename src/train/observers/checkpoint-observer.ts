// Checkpoints as an observer: every --save-every-steps, at every epoch end and on a stop request; a failed save
// stops the run naming the file, the run directory and the intact last checkpoint.
import { FileWriteError } from '../../io/atomic.js';
import type { Optimizer } from '../../optim/index.js';
import type { Mechanism } from '../../moco/index.js';
import type { PretrainConfig } from '../config.js';
import { resumeCommand, saveCheckpoint, type RunState } from '../checkpoint.js';
import type { StepEvent, TrainObserver } from '../observer.js';

export class CheckpointObserver implements TrainObserver {
  /** The newest checkpoint of the run (the resumed one until the first save). */
  last: string | null;

  constructor(private readonly c: PretrainConfig, private readonly mech: Mechanism, private readonly opt: Optimizer,
    private readonly state: () => RunState, resumedFrom: string | null, private readonly enabled: boolean, private readonly note: (line: string) => void) {
    this.last = resumedFrom;
  }

  save(): void {
    if (!this.enabled) return;
    const state = this.state();
    try {
      this.last = saveCheckpoint(this.c.out, this.mech, this.opt, state, this.c, this.c.keepCheckpoints);
    } catch (e) {
      if (!(e instanceof FileWriteError)) throw e;
      const last = this.last ? `the last good checkpoint ${this.last} is intact` : 'no checkpoint was saved before';
      throw new Error(`${e.message} (run directory ${this.c.out}, step ${state.step}); ${last}. Free space, then continue with: ${resumeCommand(this.c.out)}`, { cause: e });
    }
  }

  between(e: StepEvent): void {
    // A step that ends its epoch is saved once, by epochEnd (its state then points at the next epoch).
    if (this.c.saveEverySteps > 0 && e.step % this.c.saveEverySteps === 0 && !e.lastOfEpoch) this.save();
  }

  epochEnd(): void { this.save(); }

  stopped(reason: string): void {
    this.save();
    this.note(`${reason}: saved ${this.last}; continue with: ${resumeCommand(this.c.out)}`);
  }
}
