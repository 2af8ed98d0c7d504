// One optimizer step of any mechanism: the one place where forward and backward happen (mixed precision and
// memory formats belong here).
import type { Mechanism, MechanismOutput, StepBatch, StepRandomness } from '../moco/index.js';
import type { SGD } from '../optim/index.js';
import type { Tensor } from '../torch/index.js';

/**
 * The mechanism's forward on `batch`, backward of its loss, `afterBackward` (the gradient all-reduce of a
 * multi-process run), then SGD. Call inside a tidy scope: the output's tensors live until it ends.
 */
export function trainStep(mech: Mechanism, opt: SGD, batch: StepBatch, rnd: StepRandomness, afterBackward?: (params: Tensor[]) => void): MechanismOutput {
  const out = mech.step(batch, rnd);
  opt.zeroGrad();
  out.loss.backward();
  afterBackward?.(mech.trainableParameters());
  opt.step();
  return out;
}
