// One constructor for the optimizers `--optimizer` names.
import type { Tensor } from '../torch/index.js';
import { SGD } from './sgd.js';
import { LARS } from './lars.js';
import { AdamW } from './adamw.js';
import type { Optimizer, OptimizerName } from './optimizer.js';

export interface OptimizerOpts {
  lr: number;
  weightDecay: number;
  /** SGD's momentum (LARS keeps optimizer.py's 0.9; AdamW has betas). */
  momentum: number;
}

/** SGD (momentum, decay), LARS (MoCo v3's optimizer.py: momentum 0.9, trust 0.001) or AdamW (betas 0.9, 0.999). */
export function createOptimizer(name: OptimizerName, params: Tensor[], o: OptimizerOpts): Optimizer {
  switch (name) {
    case 'sgd':
      return new SGD(params, { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
    case 'lars':
      return new LARS(params, { lr: o.lr, weightDecay: o.weightDecay });
    case 'adamw':
      return new AdamW(params, { lr: o.lr, weightDecay: o.weightDecay });
    default:
      throw new Error(`unknown optimizer '${String(name)}'; valid: sgd, lars, adamw`);
  }
}
