// One optimizer step of any mechanism: the one place where forward and backward happen (mixed precision and
// memory formats belong here).
import type { Mechanism, MechanismOutput, StepBatch, StepRandomness } from '../moco/index.js';
import type { Optimizer } from '../optim/index.js';
import { autocast, type Tensor } from '../torch/index.js';

/** How a step computes (see PretrainConfig.amp / channelsLast). */
export interface StepPrecision {
  /** Autocast the forward in bfloat16 on this device type. */
  amp?: { deviceType: 'cpu' | 'cuda' };
  /** Hand the views to the model in channels-last memory (the model's weights should be too). */
  channelsLast?: boolean;
}

/**
 * The mechanism's forward on `batch`, backward of its loss, `afterBackward` (the gradient all-reduce of a
 * multi-process run), then the optimizer's step. Call inside a tidy scope: the output's tensors live until it ends.
 */
export function trainStep(
  mech: Mechanism,
  opt: Optimizer,
  batch: StepBatch,
  rnd: StepRandomness,
  afterBackward?: (params: Tensor[]) => void,
  precision: StepPrecision = {},
): MechanismOutput {
  const views = precision.channelsLast ? batch.views.map((v) => v.contiguous('channelsLast')) : batch.views;
  const input = { ...batch, views };
  // As torch.autocast: the forward (and the loss, which autocast keeps in fp32) inside, backward and the optimizer outside.
  const out = precision.amp
    ? autocast(precision.amp.deviceType, () => mech.step(input, rnd), 'bfloat16')
    : mech.step(input, rnd);
  opt.zeroGrad();
  out.loss.backward();
  afterBackward?.(mech.trainableParameters());
  opt.step();
  return out;
}
