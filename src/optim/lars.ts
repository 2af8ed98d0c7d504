// LARS (You et al. 2017) exactly as MoCo v3's optimizer.py: for a weight (ndim > 1) the decay is added to the
// gradient first, then the update is scaled by the trust ratio η·‖w‖/‖dw‖; biases and BN parameters (ndim ≤ 1)
// get neither decay nor scaling. Then heavy-ball momentum without dampening: μ ← momentum·μ + dw; w ← w − lr·μ.
import { keep, noGrad, onesLike, tidy, where, type Tensor } from '../torch/index.js';
import { MomentumOptimizer, type MomentumState, type ParamsArg } from './optimizer.js';

export interface LARSOpts {
  /** Learning rate (MoCo v3 sets it every iteration from its schedule). */
  lr: number;
  /** Decay added to the gradient of weights with ndim > 1, before the trust ratio; default 0. */
  weightDecay?: number;
  /** Default 0.9. */
  momentum?: number;
  /** η of the trust ratio η·‖w‖/‖dw‖; default 0.001. */
  trustCoefficient?: number;
}

export interface LARSParamGroup extends Required<LARSOpts> {
  params: Tensor[];
}

/** What stateDict() returns: the momentum buffers μ by parameter index (over all groups), and the groups' settings. */
export type LARSState = MomentumState<LARSParamGroup>;

export class LARS extends MomentumOptimizer<LARSParamGroup> {
  readonly name = 'lars' as const;
  /** optimizer.py's state name: `optimizer.mu.<i>`. */
  protected readonly bufferName = 'mu';

  /** `params` is a list of tensors, or of groups `{ params, ...overrides }`. */
  constructor(params: ParamsArg<LARSOpts>, defaults: LARSOpts) {
    super('LARS', params, defaults, { weightDecay: 0, momentum: 0.9, trustCoefficient: 0.001 }, [
      ['weightDecay', '≥'],
      ['momentum', '≥'],
      ['trustCoefficient', '>'],
    ]);
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    noGrad(() =>
      tidy(() => {
        for (const g of this.paramGroups) {
          for (const p of g.params) {
            let dp = p.grad;
            if (!dp) continue;
            if (p.dim() > 1) {
              dp = dp.add(p, g.weightDecay);
              const paramNorm = p.norm();
              const updateNorm = dp.norm();
              const one = onesLike(paramNorm);
              // On-device selects, not item(): no host sync per parameter; a zero norm (a zero-initialised weight,
              // a zero gradient) leaves the update unscaled instead of dividing by 0.
              const q = where(
                paramNorm.gt(0),
                where(updateNorm.gt(0), paramNorm.mul(g.trustCoefficient).div(updateNorm), one),
                one,
              );
              dp = dp.mul(q);
            }
            let mu = this.buffers.get(p);
            if (!mu) {
              // μ starts at zero (optimizer.py), so the first step is μ = dw, as SGD's first clone.
              mu = keep(dp.clone());
              this.buffers.set(p, mu);
            } else {
              mu.mul_(g.momentum).add_(dp);
            }
            p.add_(mu, -g.lr);
          }
        }
        return undefined;
      }),
    );
  }
}
