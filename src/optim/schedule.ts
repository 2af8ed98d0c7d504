// Learning-rate schedules as main_moco.py / main_lincls.py define them. Epochs count from 0.

/** main_moco.py --cos: lr · ½(1 + cos(π·epoch/epochs)), set once per epoch. Pass a fractional epoch for per-step. */
export function cosineLr(baseLr: number, epoch: number, epochs: number): number {
  return baseLr * 0.5 * (1 + Math.cos((Math.PI * epoch) / epochs));
}

/** Step decay: lr · gamma^(number of milestones ≤ epoch); main_moco.py uses milestones [120, 160], gamma 0.1. */
export function stepLr(baseLr: number, epoch: number, milestones: number[], gamma = 0.1): number {
  return baseLr * gamma ** milestones.filter((m) => epoch >= m).length;
}

/** Linear warm-up from ~0 to the scheduled lr over `warmupSteps` steps, then the schedule's value. */
export function withWarmup(lr: number, step: number, warmupSteps: number): number {
  return warmupSteps > 0 && step < warmupSteps ? (lr * (step + 1)) / warmupSteps : lr;
}

/** The linear scaling rule: lr · batch / base (base 256, as the MoCo README's 0.03 for 256). */
export function linearScaledLr(lr: number, batchSize: number, base = 256): number {
  return (lr * batchSize) / base;
}

export interface ScheduleConfig {
  baseLr: number;
  epochs: number;
  /** Cosine decay (--cos); else step decay at `milestones`. */
  cos: boolean;
  milestones: number[];
  warmupEpochs?: number;
}

/** The lr of a (possibly fractional) epoch under a config. */
export function lrAt(c: ScheduleConfig, epoch: number): number {
  const w = c.warmupEpochs ?? 0;
  if (w > 0 && epoch < w) return (c.baseLr * (epoch + 1e-9)) / w;
  return c.cos ? cosineLr(c.baseLr, epoch, c.epochs) : stepLr(c.baseLr, epoch, c.milestones);
}

/**
 * MoCo v3's learning rate (main_moco.py's adjust_learning_rate), set every iteration at a fractional `epoch`:
 * linear warm-up from 0 over `warmupEpochs`, then a half-cosine from `baseLr` to 0 over the remaining epochs.
 */
export function warmupCosineLr(baseLr: number, epoch: number, warmupEpochs: number, epochs: number): number {
  if (epoch < warmupEpochs) return (baseLr * epoch) / warmupEpochs;
  return baseLr * 0.5 * (1 + Math.cos((Math.PI * (epoch - warmupEpochs)) / (epochs - warmupEpochs)));
}

/**
 * MoCo v3's `--moco-m-cos` momentum (main_moco.py's adjust_moco_momentum), set every iteration at a fractional
 * `epoch`: m = 1 − ½(1 + cos(π·epoch/epochs))·(1 − m0), rising from m0 at epoch 0 to 1 at the last.
 */
export function cosineMomentum(m0: number, epoch: number, epochs: number): number {
  return 1 - 0.5 * (1 + Math.cos((Math.PI * epoch) / epochs)) * (1 - m0);
}
