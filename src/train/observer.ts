// What the pre-training loop tells the things that watch it (metrics, progress, checkpoints, the kNN monitor,
// signals): each is one observer, called in list order at fixed points of the loop.
import type { MechanismOutput } from '../moco/index.js';
import type { RunState } from './checkpoint.js';

/** One optimizer step, as the loop saw it. */
export interface StepEvent {
  epoch: number;
  /** Optimizer steps done, this one included. */
  step: number;
  /** The batch just trained on, within its epoch. */
  batchIndex: number;
  /** The batch was its epoch's last: the epoch's end (epochEnd, with the state at the next epoch) follows. */
  lastOfEpoch: boolean;
  loss: number;
  lr: number;
  /** Images a second over the current logging window. */
  imagesPerSec: number;
  /** Seconds since this (possibly resumed) run started. */
  elapsed: number;
  /** Milliseconds waited for the batch. */
  dataMs: number;
  /** Milliseconds of forward, backward, gradient averaging and optimizer. */
  stepMs: number;
}

/** The end of an epoch (or of --max-steps within one) with the run going on. */
export interface EpochEvent {
  /** The epoch that ended. */
  epoch: number;
  /** Where the run stands now (batch 0 of the next epoch when the epoch was completed). */
  state: RunState;
  lastLoss: number;
  lr: number;
}

/** How a run ended. */
export interface RunEnd {
  state: 'finished' | 'interrupted' | 'diverged';
  reason?: string;
}

/** Optional hooks; every one may be async (the loop awaits it before the next observer). */
export interface TrainObserver {
  /** Before the first step of this run (or of its resumption). */
  start?(state: RunState): void | Promise<void>;
  /** Inside the step, while its tensors are alive (they are freed after the call). `stepNo` is the step's number. */
  output?(out: MechanismOutput, stepNo: number, lastOfEpoch: boolean): void;
  /** After each optimizer step. */
  step?(e: StepEvent): void;
  /** Between two steps, when the run goes on (not after the last step, not when a stop was requested). */
  between?(e: StepEvent): void | Promise<void>;
  /** At the end of an epoch, or of --max-steps within one; not when a stop was requested. */
  epochEnd?(e: EpochEvent): void | Promise<void>;
  /** The run stopped on request (`reason`: the signal) after its current step. */
  stopped?(reason: string, state: RunState): void | Promise<void>;
  /** Every step done. */
  finished?(state: RunState, lastLoss: number): void | Promise<void>;
  /** However the run ended, error included. */
  close?(end: RunEnd): void | Promise<void>;
  /** Why the run should stop after the current step (a signal), or null. */
  stopRequest?(): string | null;
}

/** How the loop and its observers report a failure that does not stop the run. */
export type Warn = (what: string, e: unknown) => void;

/** A {@link Warn} that writes `warning: <what>: <message>` to stderr, or nothing when `quiet`. */
export function stderrWarner(quiet: boolean): Warn {
  return (what, e) => {
    if (!quiet) process.stderr.write(`warning: ${what}: ${(e as Error).message}\n`);
  };
}
