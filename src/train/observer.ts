// What the pre-training loop tells the things that watch it (metrics, progress, checkpoints, the kNN monitor,
// signals): the loop's observers (../loop), typed with pre-training's config, mechanism and optimizer.
import type { MechanismOutput, Mechanism } from '../moco/index.js';
import type { Optimizer } from '../optim/index.js';
import type { Tensor } from '../torch/index.js';
import type { LoopContext, LoopObserver } from '../loop/index.js';
import type { PretrainConfig } from './config.js';

export { stderrWarner, type EpochEvent, type RunEnd, type StepEvent, type StepAt, type Warn } from '../loop/index.js';

/** What a pre-training step hands the observers: the mechanism's output and the batch's class labels. */
export interface PretrainOutput extends MechanismOutput {
  /** int64 N class labels of the batch (on the run's device), or null for unlabelled data. */
  targets: Tensor | null;
}

/** Pre-training's part of the loop: each step hands its {@link PretrainOutput} to the observers. */
export interface PretrainLoop {
  config: PretrainConfig;
  model: Mechanism;
  optimizer: Optimizer;
  output: PretrainOutput;
  metrics: undefined;
}

/** What every hook of pre-training receives. */
export type PretrainContext = LoopContext<PretrainLoop>;

/** An observer of pre-training (a new one is one file in observers/ implementing it). */
export type TrainObserver = LoopObserver<PretrainLoop>;
