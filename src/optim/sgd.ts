// SGD with momentum, dampening, weight decay and Nesterov: torch.optim.SGD's update, step for step.
import { Tensor, keep, noGrad, tidy } from '../torch/index.js';
import { buffersByIndex, indexedTensors, loadBuffersByIndex, tensorsByIndex, type Optimizer, type OptimizerFileState } from './optimizer.js';

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
export interface SGDState {
  buffers: Map<number, Tensor>;
  groups: Omit<ParamGroup, 'params'>[];
}

export class SGD implements Optimizer<SGDState> {
  readonly name = 'sgd' as const;
  readonly paramGroups: ParamGroup[];
  private readonly momentumBuffers = new Map<Tensor, Tensor>();

  /** `params` is a list of tensors, or of groups `{ params, ...overrides }`. */
  constructor(params: Tensor[] | (Partial<SGDOpts> & { params: Tensor[] })[], defaults: SGDOpts) {
    const groups = params.length && !(params[0] instanceof Tensor) ? (params as (Partial<SGDOpts> & { params: Tensor[] })[]) : [{ params: params as Tensor[] }];
    this.paramGroups = groups.map((g) => {
      const group: ParamGroup = {
        params: g.params,
        lr: g.lr ?? defaults.lr,
        momentum: g.momentum ?? defaults.momentum ?? 0,
        dampening: g.dampening ?? defaults.dampening ?? 0,
        weightDecay: g.weightDecay ?? defaults.weightDecay ?? 0,
        nesterov: g.nesterov ?? defaults.nesterov ?? false,
      };
      if (!(group.lr >= 0)) throw new RangeError(`SGD: lr must be ≥ 0, got ${group.lr}`);
      if (!(group.momentum >= 0)) throw new RangeError(`SGD: momentum must be ≥ 0, got ${group.momentum}`);
      if (!(group.weightDecay >= 0)) throw new RangeError(`SGD: weightDecay must be ≥ 0, got ${group.weightDecay}`);
      if (group.nesterov && (group.momentum <= 0 || group.dampening !== 0)) throw new RangeError('SGD: nesterov needs momentum > 0 and dampening 0');
      return group;
    });
  }

  /** Sets every group's learning rate (schedules call this once per epoch or step). */
  setLr(lr: number): void {
    for (const g of this.paramGroups) g.lr = lr;
  }

  /** Drops all gradients (zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    noGrad(() => tidy(() => {
      for (const g of this.paramGroups) {
        for (const p of g.params) {
          const grad = p.grad;
          if (!grad) continue;
          let d = g.weightDecay !== 0 ? grad.add(p, g.weightDecay) : grad;
          if (g.momentum !== 0) {
            let buf = this.momentumBuffers.get(p);
            if (!buf) {
              buf = keep(d.clone());
              this.momentumBuffers.set(p, buf);
            } else {
              buf.mul_(g.momentum).add_(d, 1 - g.dampening);
            }
            d = g.nesterov ? d.add(buf, g.momentum) : buf;
          }
          p.add_(d, -g.lr);
        }
      }
      return undefined;
    }));
  }

  stateDict(): SGDState {
    const buffers = buffersByIndex(this.paramGroups, this.momentumBuffers);
    return { buffers, groups: this.paramGroups.map(({ params: _p, ...rest }) => rest) };
  }

  /** Restores momentum buffers (copied) and group settings saved by stateDict(). */
  loadStateDict(s: SGDState): void {
    if (s.groups.length !== this.paramGroups.length) throw new Error(`SGD.loadStateDict: ${s.groups.length} groups saved, optimizer has ${this.paramGroups.length}`);
    s.groups.forEach((g, i) => Object.assign(this.paramGroups[i]!, g));
    loadBuffersByIndex('SGD', this.paramGroups, this.momentumBuffers, s.buffers);
  }

  /** The momentum buffers as `optimizer.momentum_buffer.<i>` (the keys of every moco-ts checkpoint so far). */
  stateTensors(): OptimizerFileState {
    const s = this.stateDict();
    return { tensors: indexedTensors('momentum_buffer', s.buffers), groups: s.groups };
  }

  loadStateTensors(s: OptimizerFileState): void {
    this.loadStateDict({ buffers: tensorsByIndex('momentum_buffer', s.tensors), groups: s.groups as SGDState['groups'] });
  }

  dispose(): void {
    for (const b of this.momentumBuffers.values()) b.dispose();
    this.momentumBuffers.clear();
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
