// Fine-tuning's checkpoints as an observer: model_best after every epoch that beats the best top-1, and
// checkpoint.safetensors (the last) after every epoch with the optimiser's momentum, what --resume continues from.
import type { Tensor } from '../../torch/index.js';
import { saveSafetensors } from '../../io/safetensors.js';
import { momentumTensors, type SGD } from '../../optim/index.js';
import type { EpochEvent, LoopContext, LoopObserver } from '../../loop/index.js';
import type { ResNet, VisionTransformer } from '../../models/index.js';
import type { EncoderInfo } from '../encoder.js';
import { bestOf, type EpochMetrics } from '../linear-probe.js';
import type { EpochMetricsLoop } from './epoch-log-observer.js';

/**
 * Writes the whole fine-tuned model (torchvision / timm names: the classifier is `fc` or `head`), atomically, with
 * `moco` (architecture) and `finetune` (`info`) metadata, so that loadEncoder reads it as a classifier; with
 * `opt`, also its momentum buffers (under a prefix torchvision's loader ignores) for resuming.
 */
export function saveFinetuned(
  path: string,
  model: ResNet | VisionTransformer,
  i: EncoderInfo,
  info: Record<string, unknown>,
  opt?: SGD,
): void {
  const sd = new Map<string, Tensor>(model.stateDict());
  if (opt) for (const [k, buf] of momentumTensors(opt)) sd.set(k, buf);
  const moco = { arch: i.arch, cifarStem: i.cifarStem, width: i.width, imageSize: i.imageSize, preset: i.preset };
  saveSafetensors(path, sd, { moco: JSON.stringify(moco), finetune: JSON.stringify(info) });
}

/** The loop types this observer needs: a whole model and its SGD. */
export type FinetuneCheckpointLoop = EpochMetricsLoop & { model: ResNet | VisionTransformer; optimizer: SGD };

export interface FinetuneCheckpointOptions {
  /** The loaded encoder's description (architecture metadata of the files). */
  info: EncoderInfo;
  /** model_best.safetensors; null: not kept. */
  bestPath: string | null;
  /** checkpoint.safetensors, rewritten after every epoch; null: not kept. */
  lastPath: string | null;
  /** The `finetune` metadata of an epoch's file; `history` (all epochs so far) is given for the last checkpoint. */
  meta: (m: EpochMetrics, history?: EpochMetrics[]) => Record<string, unknown>;
  /** The epochs of a resumed run before this one (they set the best top-1 to beat); default none. */
  history?: EpochMetrics[];
}

export class FinetuneCheckpointObserver implements LoopObserver<FinetuneCheckpointLoop> {
  private readonly history: EpochMetrics[];
  private bestTop1: number;

  constructor(private readonly o: FinetuneCheckpointOptions) {
    this.history = [...(o.history ?? [])];
    this.bestTop1 = this.history.length ? bestOf(this.history).val.top1 : -Infinity;
  }

  epochEnd(ctx: LoopContext<FinetuneCheckpointLoop>, { metrics: m }: EpochEvent<EpochMetrics>): void {
    const { info, bestPath, lastPath, meta } = this.o;
    this.history.push(m);
    if (bestPath && m.val.top1 > this.bestTop1) saveFinetuned(bestPath, ctx.model, info, meta(m));
    this.bestTop1 = Math.max(this.bestTop1, m.val.top1);
    if (lastPath) saveFinetuned(lastPath, ctx.model, info, meta(m, this.history), ctx.optimizer);
  }
}
