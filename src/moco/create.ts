// One constructor for the mechanisms, from the settings a run has.
import { MoCo, type MoCoDistHooks, type MoCoOpts } from './moco.js';
import { MoCoV3, type MoCoV3DistHooks, type MoCoV3Opts } from './mocov3.js';
import { EndToEnd, type EndToEndLoss } from './end-to-end.js';
import { MemoryBank, type BankSampling } from './memory-bank.js';
import type { AnyMechanismName, Mechanism } from './mechanism.js';
import { syncBatchNorm, type CrossProcessSum } from '../nn/index.js';

/**
 * What a mechanism is built from, named as a run's settings are (PretrainConfig, the settings table), so that a
 * run's config is passed as it is: every mechanism's own options, plus the settings whose names differ there.
 * A new setting reaches the mechanism that reads it through that mechanism's options alone.
 */
export type MechanismOpts = Omit<MoCoOpts, 'shuffle' | 'dist'> &
  MoCoV3Opts & {
    /** Default 'moco'. */
    mechanism?: AnyMechanismName;
    /** MoCo and end-to-end: shuffle the key batch (ShuffleBN). Default true. */
    shuffleBn?: boolean;
    /** End-to-end: 'infonce' (default) or 'ntxent'. */
    loss?: EndToEndLoss;
    /** Memory bank: weight of the old vector in its update. Default 0.5. */
    bankMomentum?: number;
    /** Memory bank: 'shared' (default) or 'per-sample' negatives. */
    bankSampling?: BankSampling;
  };

/** What a mechanism needs beyond its settings: the training set's size and a multi-process run's hooks. */
export interface MechanismRun {
  /** Memory bank: training images (rows of the bank). */
  bankSize?: number;
  /**
   * MoCo and MoCo v3: multi-process training's hooks (key all-gather; MoCo's cross-process ShuffleBN; v3's rank,
   * the offset of its labels, and the cross-process sum of its SyncBatchNorm).
   */
  dist?: MoCoDistHooks & MoCoV3DistHooks & { crossProcessSum?: CrossProcessSum };
}

/**
 * The mechanism named by `o.mechanism`; `K` is the queue size (MoCo) or the negatives a query (memory bank).
 * 'mocov3' takes its MoCoV3Opts (MoCoV3's defaults where absent: dim 256, m 0.99, T 1.0); its LARS/AdamW and
 * per-iteration lr and momentum are the caller's (see MoCoV3.m).
 */
export function createMechanism(o: MechanismOpts, run: MechanismRun = {}): Mechanism {
  const enc = {
    arch: o.arch,
    dim: o.dim,
    T: o.T,
    head: o.head,
    cifarStem: o.cifarStem,
    width: o.width,
    bnSplits: o.bnSplits,
  };
  switch (o.mechanism ?? 'moco') {
    case 'moco':
      return new MoCo({ ...o, shuffle: o.shuffleBn, ...(run.dist ? { dist: run.dist } : {}) });
    case 'end-to-end':
      return new EndToEnd({ ...enc, shuffle: o.shuffleBn, loss: o.loss });
    case 'memory-bank':
      if (run.bankSize === undefined)
        throw new Error('createMechanism: the memory bank needs bankSize (the number of training images)');
      return new MemoryBank({ ...enc, size: run.bankSize, K: o.K, momentum: o.bankMomentum, sampling: o.bankSampling });
    case 'mocov3': {
      const v3 = new MoCoV3(o);
      if (run.dist) {
        const { gatherKeys, rank, crossProcessSum } = run.dist;
        v3.dist = { ...(gatherKeys ? { gatherKeys } : {}), ...(rank !== undefined ? { rank } : {}) };
        // main_moco.py converts the whole model, momentum encoder and predictor too, to SyncBatchNorm.
        if (crossProcessSum) syncBatchNorm(v3, crossProcessSum);
      }
      return v3;
    }
    default:
      throw new Error(`unknown mechanism '${String(o.mechanism)}'; valid: moco, end-to-end, memory-bank, mocov3`);
  }
}
