// AdamW (Loshchilov & Hutter 2019) as torch.optim.AdamW (amsgrad off): the decay is decoupled — the weight
// shrinks by lr·wd before the Adam update, instead of entering the moments — and both moments are bias-corrected:
//   w ← w·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
//   w ← w − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
// MoCo v3 trains its ViTs with it, decaying every parameter (main_moco.py passes model.parameters()).
import { keep, noGrad, tidy, zerosLike, type Tensor } from '../torch/index.js';
import { OptimizerBase, indexedTensors, tensorsByIndex, type OptimizerFileState, type ParamsArg } from './optimizer.js';

export interface AdamWOpts {
  /** Learning rate. */
  lr: number;
  /** (β1, β2); default [0.9, 0.999]. */
  betas?: [number, number];
  /** Added to √v̂; default 1e-8. */
  eps?: number;
  /** Decoupled decay: w ← w·(1 − lr·weightDecay) each step; default 0.01 (torch's). */
  weightDecay?: number;
}

export interface AdamWParamGroup extends Required<AdamWOpts> {
  params: Tensor[];
}

/**
 * What stateDict() returns, by parameter index (over all groups): the first and second moments (torch's exp_avg,
 * exp_avg_sq), the steps each parameter has taken (its bias correction), and the groups' settings.
 */
export interface AdamWState {
  expAvg: Map<number, Tensor>;
  expAvgSq: Map<number, Tensor>;
  steps: Map<number, number>;
  groups: Omit<AdamWParamGroup, 'params'>[];
}

interface Moments {
  expAvg: Tensor;
  expAvgSq: Tensor;
  step: number;
}

export class AdamW extends OptimizerBase<AdamWParamGroup, AdamWState> {
  readonly name = 'adamw' as const;
  private readonly state = new Map<Tensor, Moments>();

  /** `params` is a list of tensors, or of groups `{ params, ...overrides }`. */
  constructor(params: ParamsArg<AdamWOpts>, defaults: AdamWOpts) {
    super('AdamW', params, defaults, { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 }, [
      (g) => (g.betas.every((b) => b >= 0 && b < 1) ? undefined : `betas must be in [0, 1), got [${g.betas}]`),
      ['eps', '≥'],
      ['weightDecay', '≥'],
    ]);
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const g of this.paramGroups) {
          const [beta1, beta2] = g.betas;
          for (const p of g.params) {
            const grad = p.grad;
            if (!grad) continue;
            let s = this.state.get(p);
            if (!s) {
              s = { expAvg: keep(zerosLike(p)), expAvgSq: keep(zerosLike(p)), step: 0 };
              this.state.set(p, s);
            }
            s.step += 1;
            p.mul_(1 - g.lr * g.weightDecay);
            s.expAvg.mul_(beta1).add_(grad, 1 - beta1);
            s.expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
            const biasCorrection1 = 1 - beta1 ** s.step;
            const biasCorrection2 = 1 - beta2 ** s.step;
            const stepSize = g.lr / biasCorrection1;
            const denom = s.expAvgSq.sqrt().div_(Math.sqrt(biasCorrection2)).add_(g.eps);
            p.addcdiv_(s.expAvg, denom, -stepSize);
          }
        }
        return undefined;
      }),
    );
  }

  stateDict(): AdamWState {
    const out: AdamWState = {
      expAvg: new Map(),
      expAvgSq: new Map(),
      steps: new Map(),
      groups: this.paramGroups.map(({ params: _p, betas, ...rest }) => ({
        ...rest,
        betas: [...betas] as [number, number],
      })),
    };
    let i = 0;
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        const s = this.state.get(p);
        if (s) {
          out.expAvg.set(i, s.expAvg);
          out.expAvgSq.set(i, s.expAvgSq);
          out.steps.set(i, s.step);
        }
        i++;
      }
    }
    return out;
  }

  /** Restores the moments (copied), step counts and group settings saved by stateDict(). */
  loadStateDict(st: AdamWState): void {
    if (st.groups.length !== this.paramGroups.length)
      throw new Error(
        `AdamW.loadStateDict: ${st.groups.length} groups saved, optimizer has ${this.paramGroups.length}`,
      );
    st.groups.forEach((g, i) => Object.assign(this.paramGroups[i]!, { ...g, betas: [...g.betas] }));
    let i = 0;
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        const old = this.state.get(p);
        if (old) {
          old.expAvg.dispose();
          old.expAvgSq.dispose();
          this.state.delete(p);
        }
        const m = st.expAvg.get(i);
        const v = st.expAvgSq.get(i);
        const step = st.steps.get(i);
        if (m || v || step !== undefined) {
          if (!m || !v || step === undefined)
            throw new Error(
              `AdamW.loadStateDict: parameter ${i} has only part of its state (exp_avg, exp_avg_sq, step)`,
            );
          for (const [name, t] of [
            ['exp_avg', m],
            ['exp_avg_sq', v],
          ] as const) {
            if (t.shape.join() !== p.shape.join())
              throw new Error(
                `AdamW.loadStateDict: ${name} ${i} has shape [${t.shape}] but parameter has [${p.shape}]`,
              );
          }
          this.state.set(p, { expAvg: keep(m.clone()), expAvgSq: keep(v.clone()), step });
        }
        i++;
      }
    }
  }

  /** The moments as `optimizer.exp_avg.<i>` and `optimizer.exp_avg_sq.<i>` (torch's names); steps in `extra`. */
  stateTensors(): OptimizerFileState {
    const s = this.stateDict();
    const tensors = new Map([...indexedTensors('exp_avg', s.expAvg), ...indexedTensors('exp_avg_sq', s.expAvgSq)]);
    return {
      tensors,
      groups: s.groups as unknown as Record<string, unknown>[],
      extra: { steps: Object.fromEntries(s.steps) },
    };
  }

  loadStateTensors(s: OptimizerFileState): void {
    const raw = (s.extra?.steps ?? {}) as Record<string, number>;
    const steps = new Map(Object.entries(raw).map(([i, n]) => [Number(i), n]));
    this.loadStateDict({
      expAvg: tensorsByIndex('exp_avg', s.tensors),
      expAvgSq: tensorsByIndex('exp_avg_sq', s.tensors),
      steps,
      groups: s.groups as unknown as AdamWState['groups'],
    });
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }
}
