// One training loop for pre-training, the linear protocol and the cached-feature probe. The loop owns the order
// of things: epochs and batches from a batch source, the step, the observers' hooks, stop requests, and the
// accounting every run shares (elapsed time, throughput). What a run computes is its step; what it records,
// saves or prints are its observers, and every hook receives the same LoopContext.
// It sits below eval/ and train/ so that both protocols build on it.
import { tidy } from '../torch/index.js';

/** Where a run stands: the next batch to train is `batch` of `epoch`; `step` optimizer steps are done. */
export interface LoopState {
  epoch: number;
  batch: number;
  step: number;
}

/** The part of an optimizer the loop drives: the lr, set at the start of every epoch. */
export interface LoopOptimizer {
  setLr(lr: number): void;
}

/** The types one kind of run plugs into the loop (pre-training: its config, mechanism, optimizer, …). */
export interface LoopTypes {
  config: unknown;
  model: unknown;
  optimizer: LoopOptimizer;
  /** What a step hands the observers' `output` hook while its tensors are alive. */
  output: unknown;
  /** What the step's `epochEnd` (validation) returns, carried by {@link EpochEvent}. */
  metrics: unknown;
}

/** How the loop and its observers report a failure that does not stop the run. */
export type Warn = (what: string, e: unknown) => void;

/** A {@link Warn} that writes `warning: <what>: <message>` to stderr, or nothing when `quiet`. */
export function stderrWarner(quiet: boolean): Warn {
  return (what, e) => {
    if (!quiet) process.stderr.write(`warning: ${what}: ${(e as Error).message}\n`);
  };
}

/** What every hook and the step receive: the run's parts, where it stands, and what the loop offers. */
export interface LoopContext<T extends LoopTypes = LoopTypes> {
  readonly config: T['config'];
  readonly model: T['model'];
  readonly optimizer: T['optimizer'];
  /** Where the run stands; after an epoch's last batch, batch 0 of the next epoch. */
  readonly state: LoopState;
  /** The loss of the latest step (NaN before the first). */
  readonly lastLoss: number;
  /** A line for the person watching (above a progress bar); nothing unless the run gives a `log`. */
  log(line: string): void;
  warn: Warn;
  /** The lr of an epoch under the run's schedule (fractional epochs where the schedule allows them). */
  lr(epoch: number): number;
  /** Seconds since the run (or its resumption) started. */
  elapsed(): number;
  /** Stops the run after the current step, as a signal does (`stopped` hooks get `reason`). */
  requestStop(reason: string): void;
}

/** The step about to run, as its `train` and the `output` hooks see it. */
export interface StepAt {
  epoch: number;
  /** The batch within its epoch. */
  batchIndex: number;
  /** The step's number: optimizer steps done once it is, counting a resumed run's earlier ones. */
  step: number;
  /** The epoch's last batch, or the run's last step. */
  lastOfEpoch: boolean;
}

/** What a step returns. */
export interface StepOutput<O> {
  /** The step's loss; a non-finite one ends the run as diverged. */
  loss: number;
  /** Samples this process trained on (throughput counts `samples × worldSize`). */
  samples: number;
  /** The lr the step used, when the step sets it itself (per-iteration schedules); default the epoch's. */
  lr?: number;
  /** Handed to the observers' `output` hook before the step's tensors are freed. */
  output?: O;
}

/** What a kind of run computes. */
export interface LoopStep<T extends LoopTypes, B> {
  /** At the start of each epoch, after the loop has set the epoch's lr. */
  epochStart?(ctx: LoopContext<T>, epoch: number): void;
  /** One optimizer step on `batch`, inside a tidy scope: tensors it creates are freed after the output hooks. */
  train(ctx: LoopContext<T>, batch: B, at: StepAt): StepOutput<T['output']>;
  /** At the end of each epoch (not on a stop request), before the observers' epochEnd: e.g. validation. */
  epochEnd?(ctx: LoopContext<T>, epoch: number, lr: number): T['metrics'] | Promise<T['metrics']>;
  /** The error a non-finite loss throws (the default names the loss and the step). */
  diverged?(ctx: LoopContext<T>, loss: number, at: StepAt, lr: number): Error;
}

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
  /** Images a second over the current throughput window. */
  imagesPerSec: number;
  /** Seconds since this (possibly resumed) run started. */
  elapsed: number;
  /** Milliseconds waited for the batch. */
  dataMs: number;
  /** Milliseconds of the step (forward, backward, gradient averaging, optimizer, output hooks). */
  stepMs: number;
}

/** The end of an epoch (or of the run's last step within one) with the run going on. */
export interface EpochEvent<M = unknown> {
  /** The epoch that ended. */
  epoch: number;
  /** Where the run stands now (batch 0 of the next epoch when the epoch was completed). */
  state: LoopState;
  lastLoss: number;
  lr: number;
  /** What the step's epochEnd returned (undefined without one). */
  metrics: M;
}

/** How a run ended. */
export interface RunEnd {
  state: 'finished' | 'interrupted' | 'diverged';
  reason?: string;
}

/** Optional hooks, called in list order; every one may be async (the loop awaits it before the next observer). */
export interface LoopObserver<T extends LoopTypes = LoopTypes> {
  /** Before the first step of this run (or of its resumption). */
  start?(ctx: LoopContext<T>): void | Promise<void>;
  /** Inside the step, while its tensors are alive (they are freed after the call). */
  output?(ctx: LoopContext<T>, out: T['output'], at: StepAt): void;
  /** After each optimizer step. */
  step?(ctx: LoopContext<T>, e: StepEvent): void;
  /** Between two steps, when the run goes on (not after the last step, not when a stop was requested). */
  between?(ctx: LoopContext<T>, e: StepEvent): void | Promise<void>;
  /** At the end of an epoch, or of the run's last step within one; not when a stop was requested. */
  epochEnd?(ctx: LoopContext<T>, e: EpochEvent<T['metrics']>): void | Promise<void>;
  /** The run stopped on request (`reason`: e.g. the signal) after its current step. */
  stopped?(ctx: LoopContext<T>, reason: string): void | Promise<void>;
  /** Every step done. */
  finished?(ctx: LoopContext<T>): void | Promise<void>;
  /** However the run ended, error included; an error here is a warning. */
  close?(ctx: LoopContext<T>, end: RunEnd): void | Promise<void>;
  /** Why the run should stop after the current step (e.g. a signal that arrived), or null. */
  stopRequest?(): string | null;
}

/** Batches of an epoch from its `startBatch` on; a batch with `dispose` is disposed after its step. */
export type BatchSource<B> = (epoch: number, startBatch: number) => Iterable<B> | AsyncIterable<B>;

export interface LoopRunOptions<T extends LoopTypes> {
  config: T['config'];
  model: T['model'];
  optimizer: T['optimizer'];
  /** Epochs in all (a resumed run counts its earlier ones). */
  epochs: number;
  /** Batches an epoch: which batch ends an epoch, and where a resumed state continues. */
  batchesPerEpoch: number;
  /** Optimizer steps in all, counting a resumed run's; default epochs × batchesPerEpoch. */
  totalSteps?: number;
  /** Where to start (a resumed run); default epoch 0, batch 0, step 0. */
  state?: LoopState;
  /** The lr schedule; the loop sets `lr(epoch)` at the start of every epoch. */
  lr(epoch: number): number;
  log?: (line: string) => void;
  /** Default: nothing is reported. */
  warn?: Warn;
  /** Processes training the same steps (throughput counts all of them); default 1. */
  worldSize?: number;
  /** Steps after which the throughput window (StepEvent.imagesPerSec) starts afresh, at multiples; default 1. */
  throughputWindow?: number;
  /** Steps left out of the run's throughput (warm-up); default 2. */
  warmupSteps?: number;
  /** performance.now() when the run started (its elapsed time counts from there); default when `run` is called. */
  startedAt?: number;
}

/** How a run ended and what it did. */
export interface LoopResult {
  state: LoopState;
  lastLoss: number;
  /** The reason of a stop request that ended the run, or null. */
  stopped: string | null;
  /** Images a second (all processes) after the warm-up steps, data loading included; 0 with too few steps. */
  imagesPerSec: number;
  /** Steps this call ran. */
  steps: number;
}

/**
 * The training loop: `new Loop(step, observers).run(batches, options)`. Hooks run in this order: start; at each
 * epoch's start the lr (`options.lr`) and the step's epochStart; per step output, step, then (the run going on,
 * no stop requested) between; at each epoch's end the step's epochEnd, then the observers' epochEnd; then stopped
 * or finished; close however the run ended. Nothing is disposed by the loop except the batches: model, optimizer
 * and data stay the caller's.
 */
export class Loop<T extends LoopTypes, B extends object> {
  constructor(
    readonly step: LoopStep<T, B>,
    readonly observers: readonly LoopObserver<T>[],
  ) {}

  /**
   * Trains from `o.state` (default the start) until `o.totalSteps` steps or `o.epochs` epochs are done, or a stop
   * is requested; throws what the step or a hook throws (after the observers' close).
   */
  async run(batches: BatchSource<B>, o: LoopRunOptions<T>): Promise<LoopResult> {
    const observers = this.observers;
    const bpe = o.batchesPerEpoch;
    const totalSteps = o.totalSteps ?? o.epochs * bpe;
    const world = o.worldSize ?? 1;
    const window = o.throughputWindow ?? 1;
    const warmup = o.warmupSteps ?? 2;
    const t0 = o.startedAt ?? performance.now();
    let state: LoopState = { ...(o.state ?? { epoch: 0, batch: 0, step: 0 }) };
    let lastLoss = NaN;
    let requested: string | null = null;
    const ctx: LoopContext<T> = {
      config: o.config,
      model: o.model,
      optimizer: o.optimizer,
      get state() {
        return state;
      },
      get lastLoss() {
        return lastLoss;
      },
      log: o.log ?? (() => undefined),
      warn: o.warn ?? (() => undefined),
      lr: o.lr,
      elapsed: () => (performance.now() - t0) / 1000,
      requestStop: (reason) => {
        requested ??= reason;
      },
    };
    const stopRequest = (): string | null => {
      if (requested) return requested;
      for (const ob of observers) {
        const r = ob.stopRequest?.();
        if (r) return r;
      }
      return null;
    };

    // Throughput counts wall time from the end of the warm-up steps, data loading included.
    let timedImages = 0;
    let timedFrom = 0;
    let timedTo = 0;
    let windowStart = performance.now();
    let windowImages = 0;
    let stepsThisRun = 0;
    let done = state.step >= totalSteps;
    let stopped: string | null = null;
    let outcome: RunEnd = { state: 'finished' };

    try {
      for (const ob of observers) await ob.start?.(ctx);
      for (let epoch = state.epoch; epoch < o.epochs && !done; epoch++) {
        let lr = o.lr(epoch);
        o.optimizer.setLr(lr);
        this.step.epochStart?.(ctx, epoch);
        const startBatch = epoch === state.epoch ? state.batch : 0;
        let index = startBatch;
        let waitFrom = performance.now();
        for await (const batch of batches(epoch, startBatch)) {
          const stepFrom = performance.now();
          const dataMs = stepFrom - waitFrom;
          const stepNo = state.step + 1;
          const at: StepAt = {
            epoch,
            batchIndex: index,
            step: stepNo,
            lastOfEpoch: index + 1 === bpe || stepNo === totalSteps,
          };
          let r: { loss: number; samples: number; lr?: number };
          try {
            r = tidy(() => {
              const out = this.step.train(ctx, batch, at);
              for (const ob of observers) ob.output?.(ctx, out.output, at);
              return { loss: out.loss, samples: out.samples, lr: out.lr };
            });
          } finally {
            (batch as { dispose?: () => void }).dispose?.();
          }
          const stepMs = performance.now() - stepFrom;
          if (r.lr !== undefined) lr = r.lr;
          if (!Number.isFinite(r.loss)) {
            outcome = { state: 'diverged', reason: `loss is ${r.loss} at step ${at.step}` };
            throw (
              this.step.diverged?.(ctx, r.loss, at, lr) ??
              new Error(`loss is ${r.loss} at step ${at.step} (epoch ${epoch}); stopping`)
            );
          }
          lastLoss = r.loss;
          state = { epoch, batch: index + 1, step: at.step };
          index++;
          stepsThisRun++;
          const images = r.samples * world;
          const now = performance.now();
          if (stepsThisRun === warmup) timedFrom = now;
          if (stepsThisRun > warmup) {
            timedImages += images;
            timedTo = now;
          }
          windowImages += images;
          const ips = (1000 * windowImages) / Math.max(1, now - windowStart);
          if (state.step % window === 0) {
            windowStart = now;
            windowImages = 0;
          }
          const ev: StepEvent = {
            epoch,
            step: state.step,
            batchIndex: at.batchIndex,
            lastOfEpoch: at.batchIndex + 1 === bpe,
            loss: r.loss,
            lr,
            imagesPerSec: ips,
            elapsed: (now - t0) / 1000,
            dataMs,
            stepMs,
          };
          for (const ob of observers) ob.step?.(ctx, ev);
          if (state.step >= totalSteps) {
            done = true;
            break;
          }
          // In-memory batches resolve without a trip through the event loop; give signals a chance to land.
          await new Promise<void>((resolve) => setImmediate(resolve));
          stopped = stopRequest();
          if (stopped) break;
          for (const ob of observers) await ob.between?.(ctx, ev);
          waitFrom = performance.now();
        }
        if (state.batch >= bpe) state = { epoch: epoch + 1, batch: 0, step: state.step };
        if (stopped) break;
        const metrics = (await this.step.epochEnd?.(ctx, epoch, lr)) as T['metrics'];
        for (const ob of observers) await ob.epochEnd?.(ctx, { epoch, state, lastLoss, lr, metrics });
      }
      if (stopped) {
        for (const ob of observers) await ob.stopped?.(ctx, stopped);
        outcome = { state: 'interrupted', reason: stopped };
      } else {
        for (const ob of observers) await ob.finished?.(ctx);
      }
    } catch (e) {
      if (outcome.state === 'finished') outcome = { state: 'interrupted', reason: (e as Error).message };
      throw e;
    } finally {
      for (const ob of observers) {
        try {
          await ob.close?.(ctx, outcome);
        } catch (e) {
          ctx.warn('closing an observer', e);
        }
      }
    }
    return {
      state,
      lastLoss,
      stopped,
      steps: stepsThisRun,
      imagesPerSec: timedTo > timedFrom ? (1000 * timedImages) / (timedTo - timedFrom) : 0,
    };
  }
}
