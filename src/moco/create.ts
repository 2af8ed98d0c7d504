// One constructor for the mechanisms, from the settings a run has.
import { MoCo, type MoCoOpts } from './moco.js';
import { MoCoV3 } from './mocov3.js';
import { EndToEnd, type EndToEndLoss } from './end-to-end.js';
import { MemoryBank, type BankSampling } from './memory-bank.js';
import type { AnyMechanismName, Mechanism } from './mechanism.js';

export interface MechanismOpts extends MoCoOpts {
  /** Default 'moco'. */
  mechanism?: AnyMechanismName;
  /** MoCo v3: hidden dimension of the projector and predictor MLPs. Default 4096. */
  mlpDim?: number;
  /** MoCo v3 with a ViT arch: input size, patch size, blocks (0: the arch's), frozen patch projection. */
  imageSize?: number;
  patchSize?: number;
  vitDepth?: number;
  stopGradConv1?: boolean;
  /** End-to-end: 'infonce' (default) or 'ntxent'. */
  loss?: EndToEndLoss;
  /** Memory bank: training images (rows of the bank). */
  bankSize?: number;
  /** Memory bank: weight of the old vector in its update. Default 0.5. */
  bankMomentum?: number;
  /** Memory bank: 'shared' (default) or 'per-sample' negatives. */
  bankSampling?: BankSampling;
}

/**
 * The mechanism named by `o.mechanism`; `K` is the queue size (MoCo) or the negatives a query (memory bank).
 * 'mocov3' takes arch (a ResNet or a ViT), dim, mlpDim, m, T, cifarStem, width and the ViT's imageSize, patchSize,
 * vitDepth and stopGradConv1 (MoCoV3's defaults where absent: dim 256, m 0.99,
 * T 1.0); its LARS/AdamW and per-iteration lr and momentum are the caller's (see MoCoV3.m).
 */
export function createMechanism(o: MechanismOpts): Mechanism {
  const {
    mechanism = 'moco',
    loss,
    bankSize,
    bankMomentum,
    bankSampling,
    mlpDim,
    imageSize,
    patchSize,
    vitDepth,
    stopGradConv1,
    ...common
  } = o;
  const enc = {
    arch: common.arch,
    dim: common.dim,
    T: common.T,
    head: common.head,
    cifarStem: common.cifarStem,
    width: common.width,
    bnSplits: common.bnSplits,
  };
  switch (mechanism) {
    case 'moco':
      return new MoCo(common);
    case 'end-to-end':
      return new EndToEnd({ ...enc, shuffle: common.shuffle, loss });
    case 'memory-bank':
      if (bankSize === undefined)
        throw new Error('createMechanism: the memory bank needs bankSize (the number of training images)');
      return new MemoryBank({ ...enc, size: bankSize, K: common.K, momentum: bankMomentum, sampling: bankSampling });
    case 'mocov3':
      return new MoCoV3({
        arch: common.arch,
        dim: common.dim,
        mlpDim,
        m: common.m,
        T: common.T,
        cifarStem: common.cifarStem,
        width: common.width,
        imageSize,
        patchSize,
        vitDepth,
        stopGradConv1,
      });
    default:
      throw new Error(`unknown mechanism '${String(mechanism)}'; valid: moco, end-to-end, memory-bank, mocov3`);
  }
}
