// The linear protocol's checkpoints as an observer: model_best after every epoch that beats the best top-1, and
// checkpoint.safetensors (the last) after every epoch with the optimiser state (what --resume continues from),
// or once at the end (the cached-feature protocol, which reruns in seconds instead of resuming).
import type { Tensor } from '../../torch/index.js';
import { saveSafetensors } from '../../io/safetensors.js';
import { momentumTensors, type SGD } from '../../optim/index.js';
import type { EpochEvent, LoopContext } from '../../loop/index.js';
import type { Encoder } from '../encoder.js';
import { bestOf, type EpochMetrics, type LinearHead, type LinearLoop, type LinearObserver } from '../linear-probe.js';

/**
 * Writes backbone + classifier in torchvision layout (loadable by loadEncoder and torchvision), atomically;
 * with `opt`, also its momentum buffers (under a prefix torchvision's loader ignores) for resuming.
 */
export function saveClassifier(
  path: string,
  encoder: Encoder,
  head: LinearHead,
  info: Record<string, unknown>,
  opt?: SGD,
): void {
  const sd = new Map<string, Tensor>();
  for (const [k, t] of encoder.model.stateDict()) if (!k.startsWith('fc.')) sd.set(k, t);
  const w = head.weight.detach(),
    b = head.bias.detach();
  sd.set('fc.weight', w);
  sd.set('fc.bias', b);
  if (opt) for (const [k, buf] of momentumTensors(opt)) sd.set(k, buf);
  const i = encoder.info;
  const moco = { arch: i.arch, cifarStem: i.cifarStem, width: i.width, imageSize: i.imageSize, preset: i.preset };
  saveSafetensors(path, sd, { moco: JSON.stringify(moco), lincls: JSON.stringify(info) });
  w.dispose();
  b.dispose();
}

export interface ClassifierCheckpointOptions {
  /** The encoder whose backbone the files carry. */
  encoder: Encoder;
  /** model_best.safetensors; null: not kept. */
  bestPath: string | null;
  /** checkpoint.safetensors; null: not kept. */
  lastPath: string | null;
  /** 'epoch': the last checkpoint after every epoch, with the optimiser state and the history (resumable). */
  lastEvery: 'epoch' | 'end';
  /** The lincls metadata of an epoch's file; `history` (all epochs so far) is given for resumable files. */
  info: (m: EpochMetrics, history?: EpochMetrics[]) => Record<string, unknown>;
  /** The epochs of a resumed run before this one (they set the best top-1 to beat); default none. */
  history?: EpochMetrics[];
}

export class ClassifierCheckpointObserver implements LinearObserver {
  private readonly history: EpochMetrics[];
  private bestTop1: number;

  constructor(private readonly o: ClassifierCheckpointOptions) {
    this.history = [...(o.history ?? [])];
    this.bestTop1 = this.history.length ? bestOf(this.history).val.top1 : -Infinity;
  }

  epochEnd(ctx: LoopContext<LinearLoop>, { metrics: m }: EpochEvent<EpochMetrics>): void {
    const { encoder, bestPath, lastPath, info } = this.o;
    this.history.push(m);
    if (bestPath && m.val.top1 > this.bestTop1) saveClassifier(bestPath, encoder, ctx.model, info(m));
    this.bestTop1 = Math.max(this.bestTop1, m.val.top1);
    if (lastPath && this.o.lastEvery === 'epoch') {
      saveClassifier(lastPath, encoder, ctx.model, info(m, this.history), ctx.optimizer);
    }
  }

  finished(ctx: LoopContext<LinearLoop>): void {
    const { encoder, lastPath, lastEvery, info } = this.o;
    const last = this.history[this.history.length - 1];
    if (lastPath && lastEvery === 'end' && last) saveClassifier(lastPath, encoder, ctx.model, info(last));
  }
}
