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
