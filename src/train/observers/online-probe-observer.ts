// The online linear probe as an observer (--online-probe; solo-learn's and lightly's online linear evaluation):
// a linear classifier trained on every step's detached backbone features of the query view — the features of the
// step's own forward, so no extra forward and no gradient into the encoder — with its own SGD. Its running top-1
// over the epoch goes on the step rows as eval/online_top1; at the kNN monitor's evaluations it classifies the
// labelled test split (eval/online_val_top1). Its weights and momentum ride in the checkpoints (see CheckpointExtra).
import { F, Tensor, keep, noGrad, tidy } from '../../torch/index.js';
import type { ImageDataset } from '../../data/index.js';
import { SGD } from '../../optim/index.js';
import { LinearHead, extractFeatures } from '../../eval/index.js';
import type { CheckpointExtra } from '../checkpoint.js';
import type { StepMetrics } from '../metrics.js';
import type { EpochEvent, PretrainContext, PretrainOutput, StepAt, TrainObserver } from '../observer.js';
import type { RunLogObserver } from './run-log-observer.js';

/**
 * The probe's optimiser: solo-learn's online classifier is a param group of its own with weight_decay 0 and
 * classifier_lr 0.3 (solo/methods/base.py; scripts/pretrain/cifar/mocov2plus.yaml) under SGD with momentum 0.9.
 * Held constant here, where solo-learn decays it with the backbone's schedule: the probe is a monitor.
 */
export const ONLINE_PROBE_SGD = { lr: 0.3, momentum: 0.9, weightDecay: 0 } as const;

export interface OnlineProbeObserverOptions {
  /** Width of the backbone features (the mechanism's encoderQ.featureDim). */
  featureDim: number;
  /** Classes of the labelled training data. */
  numClasses: number;
  /** Seeds the classifier's N(0, 0.01) weights (a project Rng: the run's torch generator is not drawn from). */
  seed: number;
  /** The run's device. */
  device: string;
  /** The labelled test split classified at each kNN evaluation; none: only the training top-1. */
  val?: ImageDataset | null;
}

export class OnlineProbeObserver implements TrainObserver, CheckpointExtra {
  readonly name = 'online_probe';
  readonly head: LinearHead;
  readonly optimizer: SGD;
  /** Percent: the training top-1 of the epoch so far. */
  top1?: number;
  /** Percent: the latest test-split evaluation. */
  valTop1?: number;
  private correct = 0;
  private seen = 0;
  private runLog: RunLogObserver | null = null;

  constructor(private readonly o: OnlineProbeObserverOptions) {
    const h = LinearHead.init(o.featureDim, o.numClasses, o.seed);
    this.head = o.device === 'cpu' ? h : onDevice(h, o.device);
    this.optimizer = new SGD([this.head.weight, this.head.bias], { ...ONLINE_PROBE_SGD });
  }

  /** Where the figures become metrics rows and TensorBoard scalars (none: progress lines only). */
  attach(runLog: RunLogObserver | null): void {
    this.runLog = runLog;
    runLog?.addToEvaluations((ctx, row) => this.evaluate(ctx, row));
  }

  output(ctx: PretrainContext, out: PretrainOutput, at: StepAt): void {
    if (!out.targets) throw new Error(`--online-probe: a batch of ${ctx.config.data} has no class labels`);
    if (at.batchIndex === 0) this.correct = this.seen = 0;
    // The MoCo step is done (its optimizer has stepped): this graph starts at the detached features.
    const logits = this.head.forward(out.features.float());
    const loss = F.crossEntropy(logits, out.targets);
    this.optimizer.zeroGrad();
    loss.backward();
    this.optimizer.step();
    this.correct += noGrad(() => logits.argmax(1).eq(out.targets!).sum().item());
    this.seen += out.targets.shape[0]!;
    this.top1 = (100 * this.correct) / this.seen;
    if (at.step % ctx.config.printFreq === 0 || at.lastOfEpoch) this.runLog?.addToStepRow({ onlineTop1: this.top1 });
  }

  epochEnd(ctx: PretrainContext, e: EpochEvent): void {
    if (this.top1 !== undefined)
      ctx.log(`epoch ${e.epoch}: online probe top-1 ${this.top1.toFixed(2)}% (training batches)`);
  }

  /** The test split's top-1 for an evaluation row; nothing before the first step (the probe is untrained). */
  private async evaluate(ctx: PretrainContext, row: StepMetrics): Promise<Partial<StepMetrics>> {
    const val = this.o.val;
    if (!val || row.step === 0) return {};
    const enc = ctx.model.encoderQ;
    const c = ctx.config;
    const was = enc.training;
    enc.eval();
    try {
      const encode = (x: Tensor): Tensor => (c.device === 'cpu' ? enc.features(x) : enc.features(x.to(c.device)));
      const f = await extractFeatures(encode, val, {
        augment: c.evalAugment,
        augmentOpts: { size: c.imageSize },
        batchSize: 512,
        normalize: false,
      });
      try {
        const top1 = noGrad(() =>
          tidy(() => {
            const labels = c.device === 'cpu' ? f.labels! : f.labels!.to(c.device);
            return this.head.forward(f.features).argmax(1).eq(labels).float().mean().item() * 100;
          }),
        );
        this.valTop1 = top1;
        ctx.log(`step ${row.step}: online probe top-1 ${top1.toFixed(2)}% (test split)`);
        return { onlineValTop1: top1 };
      } finally {
        f.features.dispose();
        f.labels?.dispose();
      }
    } finally {
      enc.train(was);
    }
  }

  stateTensors(): Map<string, Tensor> {
    const m = new Map<string, Tensor>([
      ['weight', this.head.weight],
      ['bias', this.head.bias],
    ]);
    for (const [k, t] of this.optimizer.stateTensors().tensors) m.set(k, t);
    return m;
  }

  loadStateTensors(tensors: Map<string, Tensor>): void {
    const w = tensors.get('weight');
    const b = tensors.get('bias');
    if (!w || !b) return;
    if (w.shape.join() !== this.head.weight.shape.join())
      throw new Error(
        `--online-probe: the checkpoint's probe is ${w.shape[0]} classes × ${w.shape[1]} features, this run's ${this.head.weight.shape.join(' × ')}`,
      );
    noGrad(() => {
      this.head.weight.copy_(w);
      this.head.bias.copy_(b);
    });
    this.optimizer.loadStateTensors({ tensors, groups: this.optimizer.stateTensors().groups });
  }

  close(): void {
    this.optimizer.dispose();
    this.head.dispose();
  }
}

/** The head's tensors moved to `device` (the CPU ones freed). */
function onDevice(h: LinearHead, device: string): LinearHead {
  const moved = new LinearHead(keep(noGrad(() => h.weight.to(device))), keep(noGrad(() => h.bias.to(device))));
  h.dispose();
  return moved;
}
