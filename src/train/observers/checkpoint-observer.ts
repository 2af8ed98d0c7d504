// Checkpoints as an observer: every --save-every-steps, at every epoch end and on a stop request; a failed save
// stops the run naming the file, the run directory and the intact last checkpoint.
import { FileWriteError } from '../../io/atomic.js';
import { resumeCommand, saveCheckpoint, type CheckpointExtra } from '../checkpoint.js';
import type { PretrainContext, StepEvent, TrainObserver } from '../observer.js';

export interface CheckpointObserverOptions {
  /** The checkpoint a resumed run continues from; default none. */
  resumedFrom?: string | null;
  /** Write checkpoints (only the main process of a multi-process run does); default true. */
  enabled?: boolean;
  /** State besides the model and optimizer that each checkpoint carries (the online probe's); default none. */
  extras?: readonly CheckpointExtra[];
}

export class CheckpointObserver implements TrainObserver {
  /** The newest checkpoint of the run (the resumed one until the first save). */
  last: string | null;
  private readonly enabled: boolean;
  private readonly extras: readonly CheckpointExtra[];

  constructor(o: CheckpointObserverOptions = {}) {
    this.last = o.resumedFrom ?? null;
    this.enabled = o.enabled ?? true;
    this.extras = o.extras ?? [];
  }

  /** Saves the run as it stands (the context's model, optimizer and state). */
  save(ctx: PretrainContext): void {
    if (!this.enabled) return;
    const { config: c, state } = ctx;
    try {
      this.last = saveCheckpoint(c.out, ctx.model, ctx.optimizer, state, c, c.keepCheckpoints, this.extras);
    } catch (e) {
      if (!(e instanceof FileWriteError)) throw e;
      const last = this.last ? `the last good checkpoint ${this.last} is intact` : 'no checkpoint was saved before';
      throw new Error(
        `${e.message} (run directory ${c.out}, step ${state.step}); ${last}. Free space, then continue with: ${resumeCommand(c.out)}`,
        { cause: e },
      );
    }
  }

  between(ctx: PretrainContext, e: StepEvent): void {
    // A step that ends its epoch is saved once, by epochEnd (its state then points at the next epoch).
    const every = ctx.config.saveEverySteps;
    if (every > 0 && e.step % every === 0 && !e.lastOfEpoch) this.save(ctx);
  }

  epochEnd(ctx: PretrainContext): void {
    this.save(ctx);
  }

  stopped(ctx: PretrainContext, reason: string): void {
    this.save(ctx);
    ctx.log(`${reason}: saved ${this.last}; continue with: ${resumeCommand(ctx.config.out)}`);
  }
}
