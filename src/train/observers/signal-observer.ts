// SIGINT/SIGTERM as an observer: a signal asks the loop to stop after the current step (a checkpoint is saved).
// Opt-in (the CLI's pretrain): a library caller keeps its process's own signal handling.
import type { RunEnd, TrainObserver } from '../observer.js';

export class SignalObserver implements TrainObserver {
  private signal: string | null = null;
  private readonly handlers = {
    SIGINT: (): void => {
      this.signal = 'SIGINT';
    },
    SIGTERM: (): void => {
      this.signal = 'SIGTERM';
    },
  };

  /** Installs the handlers now, so that a signal during the run's setup is not lost; `close` removes them. */
  constructor() {
    process.on('SIGINT', this.handlers.SIGINT);
    process.on('SIGTERM', this.handlers.SIGTERM);
  }

  stopRequest(): string | null {
    return this.signal;
  }

  close(_ctx: unknown, _end: RunEnd): void {
    process.off('SIGINT', this.handlers.SIGINT);
    process.off('SIGTERM', this.handlers.SIGTERM);
  }
}
