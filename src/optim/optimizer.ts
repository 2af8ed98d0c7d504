// What the training loop needs from an optimizer (SGD, LARS, AdamW): a step over the gradients, the learning rate
// of each parameter group (schedules set it per epoch or per iteration), and its state as a checkpoint holds it —
// named tensors under `optimizer.` plus JSON-able settings — so that a resumed run continues step for step.
import { Tensor, keep } from '../torch/index.js';

export type OptimizerName = 'sgd' | 'lars' | 'adamw';
export const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'lars', 'adamw'];

/** Prefix of every optimizer tensor in a flat tensor file (our checkpoints); model keys never start with it. */
export const OPTIMIZER_PREFIX = 'optimizer.';

/** An optimizer's state as a flat file holds it: tensors by file name (the optimizer's own, not copies) and JSON. */
export interface OptimizerFileState {
  /** Tensors keyed `optimizer.<state>.<parameter index over all groups>`. */
  tensors: Map<string, Tensor>;
  /** The groups' settings (lr, decay, …), params left out. */
  groups: Record<string, unknown>[];
  /** Other state that is not a tensor (AdamW's per-parameter step counts). */
  extra?: Record<string, unknown>;
}

export interface Optimizer<S = unknown> {
  /** Which optimizer this is (`--optimizer`); a checkpoint records it. */
  readonly name: OptimizerName;
  readonly paramGroups: readonly { lr: number; params: Tensor[] }[];
  /** Sets every group's learning rate. */
  setLr(lr: number): void;
  /** Drops all gradients (zero_grad(set_to_none=True)). */
  zeroGrad(): void;
  /** One update of every parameter that has a gradient. */
  step(): void;
  /** The state by parameter index (buffers are the optimizer's own tensors) and the groups' settings. */
  stateDict(): S;
  /** Restores (copies) a state saved by stateDict(). */
  loadStateDict(s: S): void;
  /** The state as named tensors and JSON (see OptimizerFileState). */
  stateTensors(): OptimizerFileState;
  /** Restores a state saved by stateTensors(), from a file's tensors (other keys are ignored; copied). */
  loadStateTensors(s: OptimizerFileState): void;
  dispose(): void;
}

/** The learning rate of each parameter group. */
export function groupLrs(opt: Pick<Optimizer, 'paramGroups'>): number[] {
  return opt.paramGroups.map((g) => g.lr);
}

/** `by index → tensor` as file names `optimizer.<state>.<i>`. */
export function indexedTensors(state: string, byIndex: Map<number, Tensor>): Map<string, Tensor> {
  return new Map([...byIndex].map(([i, t]) => [`${OPTIMIZER_PREFIX}${state}.${i}`, t]));
}

/** The tensors of one state among a file's (`optimizer.<state>.<i>`), by parameter index. */
export function tensorsByIndex(state: string, tensors: Map<string, Tensor>): Map<number, Tensor> {
  const prefix = `${OPTIMIZER_PREFIX}${state}.`;
  const out = new Map<number, Tensor>();
  for (const [k, t] of tensors) {
    if (!k.startsWith(prefix)) continue;
    const i = Number(k.slice(prefix.length));
    if (Number.isInteger(i) && i >= 0) out.set(i, t);
  }
  return out;
}

/** A per-parameter buffer (momentum, μ) by the parameter's index over all groups: what stateDict() saves. */
export function buffersByIndex(
  groups: readonly { params: Tensor[] }[],
  buffers: Map<Tensor, Tensor>,
): Map<number, Tensor> {
  const out = new Map<number, Tensor>();
  let i = 0;
  for (const g of groups) {
    for (const p of g.params) {
      const b = buffers.get(p);
      if (b) out.set(i, b);
      i++;
    }
  }
  return out;
}

/**
 * Replaces `buffers` with copies of `saved` (by parameter index, as {@link buffersByIndex} gives them); a buffer
 * whose shape is not its parameter's is refused, naming `optimizer` (e.g. `SGD`).
 */
export function loadBuffersByIndex(
  optimizer: string,
  groups: readonly { params: Tensor[] }[],
  buffers: Map<Tensor, Tensor>,
  saved: Map<number, Tensor>,
): void {
  let i = 0;
  for (const g of groups) {
    for (const p of g.params) {
      const b = saved.get(i);
      buffers.get(p)?.dispose();
      if (b) {
        if (b.shape.join() !== p.shape.join())
          throw new Error(
            `${optimizer}.loadStateDict: momentum buffer ${i} has shape [${b.shape}] but parameter has [${p.shape}]`,
          );
        buffers.set(p, keep(b.clone()));
      } else {
        buffers.delete(p);
      }
      i++;
    }
  }
}

/** The parameters an optimizer takes: a list of tensors (one group), or groups `{ params, ...overrides }`. */
export type ParamsArg<O> = Tensor[] | (Partial<O> & { params: Tensor[] })[];

/** The groups of `params` (a plain list of tensors is one group), each with its overrides of the defaults. */
export function groupsOf<O>(params: ParamsArg<O>): (Partial<O> & { params: Tensor[] })[] {
  return params.length && !(params[0] instanceof Tensor)
    ? (params as (Partial<O> & { params: Tensor[] })[])
    : [{ params: params as Tensor[] } as Partial<O> & { params: Tensor[] }];
}

/**
 * A check of a group's resolved settings: `[setting, '≥']` or `[setting, '>']` (compared with 0), or a function
 * that returns what is wrong (without the optimizer's name), or undefined when nothing is.
 */
export type GroupRule<G> = readonly [keyof G & string, '≥' | '>'] | ((g: G) => string | undefined);

/**
 * The groups of `params` with every setting resolved: the group's own, else `defaults`' (the constructor's), else
 * `fallbacks`' (the documented default); arrays are copied. Keys come in the order `params`, `lr`, then `fallbacks`'
 * order: checkpoints record the groups' settings in that order. `lr` must be ≥ 0, then `rules` hold in their order,
 * or a RangeError names `label`.
 */
function resolveGroups<G extends { lr: number; params: Tensor[] }>(
  label: string,
  params: ParamsArg<Omit<G, 'params'>>,
  defaults: Pick<G, 'lr'> & Partial<Omit<G, 'params'>>,
  fallbacks: Omit<G, 'params' | 'lr'>,
  rules: readonly GroupRule<G>[],
): G[] {
  const settings = Object.keys(fallbacks);
  const byName = (o: object): Record<string, unknown> => o as Record<string, unknown>;
  return groupsOf(params).map((g) => {
    const group = { params: g.params, lr: g.lr ?? defaults.lr } as G;
    for (const k of settings) {
      const v = byName(g)[k] ?? byName(defaults)[k] ?? byName(fallbacks)[k];
      byName(group)[k] = Array.isArray(v) ? [...(v as unknown[])] : v;
    }
    for (const rule of [['lr', '≥'] as const, ...rules]) {
      if (typeof rule === 'function') {
        const wrong = rule(group);
        if (wrong !== undefined) throw new RangeError(`${label}: ${wrong}`);
        continue;
      }
      const [k, rel] = rule;
      const v = group[k] as number;
      if (!(rel === '≥' ? v >= 0 : v > 0)) throw new RangeError(`${label}: ${k} must be ${rel} 0, got ${v}`);
    }
    return group;
  });
}

/** What every optimizer here shares: parameter groups with a learning rate, and dropping the gradients. */
export abstract class OptimizerBase<G extends { lr: number; params: Tensor[] }, S> implements Optimizer<S> {
  abstract readonly name: OptimizerName;
  readonly paramGroups: G[];

  /**
   * `params` is a list of tensors, or of groups `{ params, ...overrides }`; see `resolveGroups` for
   * `defaults`, `fallbacks` and `rules`. `label` names the optimizer in errors (`SGD`, `LARS`, `AdamW`).
   */
  constructor(
    protected readonly label: string,
    params: ParamsArg<Omit<G, 'params'>>,
    defaults: Pick<G, 'lr'> & Partial<Omit<G, 'params'>>,
    fallbacks: Omit<G, 'params' | 'lr'>,
    rules: readonly GroupRule<G>[] = [],
  ) {
    this.paramGroups = resolveGroups(label, params, defaults, fallbacks, rules);
  }

  /** Sets every group's learning rate (schedules call this once per epoch, or every iteration for MoCo v3). */
  setLr(lr: number): void {
    for (const g of this.paramGroups) g.lr = lr;
  }

  /** Drops all gradients (zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  abstract step(): void;
  abstract stateDict(): S;
  abstract loadStateDict(s: S): void;
  abstract stateTensors(): OptimizerFileState;
  abstract loadStateTensors(s: OptimizerFileState): void;
  abstract dispose(): void;
}

/** The state of an optimizer with one buffer a parameter (SGD's momentum, LARS's μ), by parameter index. */
export interface MomentumState<G> {
  buffers: Map<number, Tensor>;
  groups: Omit<G, 'params'>[];
}

/**
 * SGD's and LARS's shared state handling: one buffer a parameter, saved in checkpoints as
 * `optimizer.<bufferName>.<i>` beside the groups' settings.
 */
export abstract class MomentumOptimizer<G extends { lr: number; params: Tensor[] }> extends OptimizerBase<
  G,
  MomentumState<G>
> {
  /** The buffer of each parameter that has taken a step. */
  protected readonly buffers = new Map<Tensor, Tensor>();
  /** The buffers' name in a checkpoint (`momentum_buffer`, `mu`). */
  protected abstract readonly bufferName: string;

  stateDict(): MomentumState<G> {
    return {
      buffers: buffersByIndex(this.paramGroups, this.buffers),
      groups: this.paramGroups.map(({ params: _p, ...rest }) => rest),
    };
  }

  /** Restores the buffers (copied) and group settings saved by stateDict(). */
  loadStateDict(s: MomentumState<G>): void {
    if (s.groups.length !== this.paramGroups.length)
      throw new Error(
        `${this.label}.loadStateDict: ${s.groups.length} groups saved, optimizer has ${this.paramGroups.length}`,
      );
    s.groups.forEach((g, i) => Object.assign(this.paramGroups[i]!, g));
    loadBuffersByIndex(this.label, this.paramGroups, this.buffers, s.buffers);
  }

  stateTensors(): OptimizerFileState {
    const s = this.stateDict();
    return { tensors: indexedTensors(this.bufferName, s.buffers), groups: s.groups };
  }

  loadStateTensors(s: OptimizerFileState): void {
    this.loadStateDict({
      buffers: tensorsByIndex(this.bufferName, s.tensors),
      groups: s.groups as MomentumState<G>['groups'],
    });
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
