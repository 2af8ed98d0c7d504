// What the pre-training loop tells the things that watch it (metrics, progress, checkpoints, the kNN monitor,
// signals): the loop's observers (../loop), typed with pre-training's config, mechanism and optimizer.
import type { MechanismOutput, Mechanism } from '../moco/index.js';
import type { Optimizer } from '../optim/index.js';
import type { LoopContext, LoopObserver } from '../loop/index.js';
import type { PretrainConfig } from './config.js';

export { stderrWarner, type EpochEvent, type RunEnd, type StepEvent, type StepAt, type Warn } from '../loop/index.js';

/** Pre-training's part of the loop: each step hands its MechanismOutput to the observers. */
export interface PretrainLoop {
  config: PretrainConfig;
  model: Mechanism;
  optimizer: Optimizer;
  output: MechanismOutput;
  metrics: undefined;
}

/** What every hook of pre-training receives. */
export type PretrainContext = LoopContext<PretrainLoop>;

/** An observer of pre-training (a new one is one file in observers/ implementing it). */
export type TrainObserver = LoopObserver<PretrainLoop>;
