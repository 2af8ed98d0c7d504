// SGD with momentum, dampening, weight decay and Nesterov: torch.optim.SGD's update, step for step.
import { keep, noGrad, tidy, type Tensor } from '../torch/index.js';
import { MomentumOptimizer, indexedTensors, tensorsByIndex, type MomentumState, type ParamsArg } from './optimizer.js';

export interface SGDOpts {
  /** Learning rate. */
  lr: number;
  /** Default 0. */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** L2 penalty added to the gradient before momentum; default 0. */
  weightDecay?: number;
  /** Default false. */
  nesterov?: boolean;
}

export interface ParamGroup extends Required<SGDOpts> {
  params: Tensor[];
}

/** What stateDict() returns: momentum buffers by parameter index (over all groups), and the groups' settings. */
export type SGDState = MomentumState<ParamGroup>;

export class SGD extends MomentumOptimizer<ParamGroup> {
  readonly name = 'sgd' as const;
  /** The keys of every moco-ts checkpoint's momentum: `optimizer.momentum_buffer.<i>`. */
  protected readonly bufferName = 'momentum_buffer';

  /** `params` is a list of tensors, or of groups `{ params, ...overrides }`. */
  constructor(params: ParamsArg<SGDOpts>, defaults: SGDOpts) {
    super('SGD', params, defaults, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false }, [
      ['momentum', '≥'],
      ['weightDecay', '≥'],
      (g) =>
        g.nesterov && (g.momentum <= 0 || g.dampening !== 0)
          ? 'nesterov needs momentum > 0 and dampening 0'
          : undefined,
    ]);
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const g of this.paramGroups) {
          for (const p of g.params) {
            const grad = p.grad;
            if (!grad) continue;
            let d = g.weightDecay !== 0 ? grad.add(p, g.weightDecay) : grad;
            if (g.momentum !== 0) {
              let buf = this.buffers.get(p);
              if (!buf) {
                buf = keep(d.clone());
                this.buffers.set(p, buf);
              } else {
                buf.mul_(g.momentum).add_(d, 1 - g.dampening);
              }
              d = g.nesterov ? d.add(buf, g.momentum) : buf;
            }
            p.add_(d, -g.lr);
          }
        }
        return undefined;
      }),
    );
  }
}

/** Name prefix of SGD momentum buffers in a flat tensor file (our checkpoints): `optimizer.momentum_buffer.<i>`. */
export const MOMENTUM_PREFIX = 'optimizer.momentum_buffer.';

/** The momentum buffers of `opt` under their file names (the buffers themselves, not copies). */
export function momentumTensors(opt: SGD): Map<string, Tensor> {
  return indexedTensors('momentum_buffer', opt.stateDict().buffers);
}

/** The momentum buffers among a file's tensors, by parameter index (the same tensors; see {@link SGD.loadStateDict}). */
export function momentumFromTensors(tensors: Map<string, Tensor>): Map<number, Tensor> {
  return tensorsByIndex('momentum_buffer', tensors);
}
