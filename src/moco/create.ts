// One constructor for the three mechanisms, from the settings a run has.
import { MoCo, type MoCoOpts } from './moco.js';
import { EndToEnd, type EndToEndLoss } from './end-to-end.js';
import { MemoryBank, type BankSampling } from './memory-bank.js';
import type { Mechanism, MechanismName } from './mechanism.js';

export interface MechanismOpts extends MoCoOpts {
  /** Default 'moco'. */
  mechanism?: MechanismName;
  /** End-to-end: 'infonce' (default) or 'ntxent'. */
  loss?: EndToEndLoss;
  /** Memory bank: training images (rows of the bank). */
  bankSize?: number;
  /** Memory bank: weight of the old vector in its update. Default 0.5. */
  bankMomentum?: number;
  /** Memory bank: 'shared' (default) or 'per-sample' negatives. */
  bankSampling?: BankSampling;
}

/** The mechanism named by `o.mechanism`; `K` is the queue size (MoCo) or the negatives a query (memory bank). */
export function createMechanism(o: MechanismOpts): Mechanism {
  const { mechanism = 'moco', loss, bankSize, bankMomentum, bankSampling, ...common } = o;
  const enc = { arch: common.arch, dim: common.dim, T: common.T, head: common.head, cifarStem: common.cifarStem, width: common.width, bnSplits: common.bnSplits };
  switch (mechanism) {
    case 'moco': return new MoCo(common);
    case 'end-to-end': return new EndToEnd({ ...enc, shuffle: common.shuffle, loss });
    case 'memory-bank':
      if (bankSize === undefined) throw new Error('createMechanism: the memory bank needs bankSize (the number of training images)');
      return new MemoryBank({ ...enc, size: bankSize, K: common.K, momentum: bankMomentum, sampling: bankSampling });
    default: throw new Error(`unknown mechanism '${String(mechanism)}'; valid: moco, end-to-end, memory-bank`);
  }
}
