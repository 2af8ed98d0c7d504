// What the pre-training loop needs from a way of getting the negatives of the InfoNCE loss (MoCo v1 paper,
// Fig. 3): MoCo (momentum key encoder + queue), end-to-end (the other keys of the batch, gradients through
// both views) and the memory bank (one stored feature per training image); and MoCo v3 (the momentum encoder's
// keys of the same batch, both directions). One file a mechanism beside this.
import type { Tensor } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import type { Backbone } from '../models/index.js';

/**
 * The mechanisms `moco pretrain --mechanism` runs: the three of MoCo v1's Fig. 3 and MoCo v3's (no queue; a
 * predictor, LARS/AdamW and per-iteration lr and momentum schedules).
 */
export type MechanismName = 'moco' | 'end-to-end' | 'memory-bank' | 'mocov3';
export const MECHANISMS: readonly MechanismName[] = ['moco', 'end-to-end', 'memory-bank', 'mocov3'];

/** Every mechanism the library builds (= MechanismName, now that MoCo v3 is a --mechanism; kept for callers). */
export type AnyMechanismName = MechanismName;

export function isMechanismName(s: unknown): s is MechanismName {
  return typeof s === 'string' && (MECHANISMS as readonly string[]).includes(s);
}

/** One training batch as a mechanism sees it. */
export interface StepBatch {
  /** `[x_q, x_k]` (N×3×H×W each) for two-view mechanisms, `[x]` for the memory bank. */
  views: Tensor[];
  /** The dataset index of each image (the memory bank's row). */
  indices: Int32Array;
}

/**
 * Everything random in one step, drawn up front so that a test can pass PyTorch the same values and a resumed
 * run draws the same ones (the loop keys them by seed, epoch and batch).
 */
export interface StepRandomness {
  /** Permutation of the key batch for ShuffleBN (int64 N); default: torch.randperm from the default generator. */
  keyPerm?: Tensor;
  /** Second permutation, for the swapped direction of MoCo's symmetric loss. */
  keyPerm2?: Tensor;
  /** Memory bank: int64 indices of the negatives, K (shared by the batch) or N×K (per sample). */
  negatives?: Tensor;
}

/** A seeded source of a step's random draws, keyed by a tag (the loop binds seed, epoch and batch). */
export interface StepRng {
  /** A random permutation of 0..n−1 as int64. */
  permutation(tag: string, n: number): Tensor;
  /** `shape` uniform integers in [0, high) as int64. */
  integers(tag: string, shape: number[], high: number): Tensor;
}

export interface MechanismOutput {
  /** The loss to back-propagate (InfoNCE, or NT-Xent for end-to-end --loss ntxent). */
  loss: Tensor;
  /** N×C logits (similarities / T); row i's positive is column `labels[i]`. */
  logits: Tensor;
  /** int64 N: the column of each row's positive. */
  labels: Tensor;
  /** N×dim L2-normalised query embeddings, for monitoring (embedding spread). */
  q: Tensor;
  /**
   * N×featureDim backbone features of the query view (encoderQ.features, before the head) from this step's own
   * forward, detached: what an online probe trains on without another forward and without a gradient into the
   * encoder.
   */
  features: Tensor;
  /** The positives' similarities l_pos and the negatives' l_neg (cosines, not divided by T), for the histograms. */
  similarities(): { lPos: Tensor; lNeg: Tensor };
}

/**
 * A mechanism: the encoder that is trained, its extra state (key encoder, queue, bank) as named tensors that
 * checkpoints save and restore, and one training step's forward. The loop backward()s the returned loss.
 */
export interface Mechanism extends Module {
  readonly mechanism: AnyMechanismName;
  /** Augmented views a training image gives per step: 2 (query and key) or 1 (memory bank). */
  readonly viewsPerImage: 1 | 2;
  /** Softmax temperature τ. */
  readonly T: number;
  /** The query encoder f_q (backbone + head): what the optimizer trains, what the kNN monitor and exports use. */
  readonly encoderQ: Backbone;
  /** The parameters the optimizer trains. */
  trainableParameters(): Tensor[];
  /** This step's random draws of N images. */
  randomness(rng: StepRng, n: number): StepRandomness;
  /**
   * Sets the key encoder's momentum for the next steps, where the recipe schedules it per iteration (MoCo v3's
   * cosine momentum); absent where it is fixed.
   */
  setMomentum?(m: number): void;
  /**
   * The forward of one training step: the loss, and the mechanism's own updates (momentum update, enqueue,
   * bank update) — so call it once per optimizer step.
   */
  step(batch: StepBatch, rnd?: StepRandomness): MechanismOutput;
}
