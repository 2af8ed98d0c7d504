// The run's record as an observer: metrics.jsonl/csv rows, TensorBoard events (scalars, l_pos/l_neg histograms,
// images) and run.json, however the run ends. Only the main process has one.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderAugmentPreview, type PresetName } from '../../data/index.js';
import { instanceAccuracy, type MechanismOutput } from '../../moco/index.js';
import { FileWriteError } from '../../io/atomic.js';
import type { PretrainConfig } from '../config.js';
import type { StepMetrics } from '../metrics.js';
import { RunLog, tensorHistogram } from '../run-log.js';
import type { PretrainContext, RunEnd, StepAt, StepEvent, TrainObserver, Warn } from '../observer.js';

type Watch = { acc1: number; acc5: number; embedStd: number };

/** More values of an evaluation row, computed when it is written (e.g. the online probe on the test split). */
export type EvaluationFields = (ctx: PretrainContext, row: StepMetrics) => Promise<Partial<StepMetrics>>;

export class RunLogObserver implements TrainObserver {
  private watch: Watch | null = null;
  private extra: Partial<StepMetrics> = {};
  private readonly evaluations: EvaluationFields[] = [];

  private constructor(
    readonly log: RunLog,
    private readonly c: PretrainConfig,
    private readonly warn: Warn,
  ) {}

  /** Opens the run's log; a new run also records its config and an augmentation preview (never fatal). */
  static async open(
    c: PretrainConfig,
    o: { fromStep: number; stepsPerEpoch: number; totalSteps: number; command?: string[]; warn: Warn },
  ): Promise<RunLogObserver> {
    const log = new RunLog(c.out, {
      fromStep: o.fromStep,
      device: c.device,
      stepsPerEpoch: o.stepsPerEpoch,
      totalSteps: o.totalSteps,
      command: o.command,
    });
    if (o.fromStep === 0) {
      log.text('config', `\`\`\`json\n${JSON.stringify(c, null, 2)}\n\`\`\``, 0);
      // What the network is shown, at the start; a preview that cannot be rendered never stops training.
      try {
        const file = join(c.out, 'augment-preview.png');
        const p = await renderAugmentPreview(c.data, {
          preset: c.augment as PresetName,
          out: file,
          images: 4,
          views: 2,
          size: c.imageSize,
          seed: c.seed,
        });
        log.image('augment/preview', 'augment-preview.png', readFileSync(file), p.width, p.height, 0);
      } catch (e) {
        o.warn('augmentation preview', e);
      }
    }
    return new RunLogObserver(log, c, o.warn);
  }

  /** Events and run.json that cannot be written (a full disk) are a warning: the checkpoints are what must not fail. */
  flush(): void {
    try {
      this.log.flush();
    } catch (e) {
      if (!(e instanceof FileWriteError)) throw e;
      this.warn('TensorBoard events', e);
    }
  }

  output(_ctx: unknown, out: MechanismOutput, at: StepAt): void {
    const stepNo = at.step;
    const [acc1, acc5] = instanceAccuracy(out.logits, [1, 5], out.labels) as [number, number];
    this.watch = { acc1, acc5, embedStd: out.q.detach().std({ dim: 0 }).mean().item() };
    // Histograms every --print-freq steps, at the first step, and at the last step of an epoch or of the run.
    if (stepNo % this.c.printFreq === 0 || at.lastOfEpoch || stepNo === 1) {
      const { lPos, lNeg } = out.similarities();
      this.log.histogram('train/l_pos', tensorHistogram(lPos), stepNo);
      this.log.histogram('train/l_neg', tensorHistogram(lNeg), stepNo);
    }
  }

  step(_ctx: unknown, e: StepEvent): void {
    const w = this.watch;
    this.watch = null;
    this.log.row({
      epoch: e.epoch,
      step: e.step,
      loss: e.loss,
      lr: e.lr,
      imagesPerSec: e.imagesPerSec,
      elapsed: e.elapsed,
      ...(w ?? {}),
      dataMs: e.dataMs,
      stepMs: e.stepMs,
      ...this.extra,
    });
    this.extra = {};
  }

  /** Values another observer adds to the row of the current step (call from an `output` or `step` hook before this one's). */
  addToStepRow(fields: Partial<StepMetrics>): void {
    Object.assign(this.extra, fields);
  }

  /** Has `fields` add its values to every evaluation row ({@link evaluationRow}), in the order added. */
  addToEvaluations(fields: EvaluationFields): void {
    this.evaluations.push(fields);
  }

  /** An evaluation's row (the kNN monitor's), with the values of {@link addToEvaluations}. */
  async evaluationRow(ctx: PretrainContext, m: StepMetrics): Promise<void> {
    let row = m;
    for (const f of this.evaluations) row = { ...row, ...(await f(ctx, m)) };
    this.log.row(row);
  }

  between(_ctx: unknown, e: StepEvent): void {
    // With the checkpoints: not at an epoch's last step, which epochEnd flushes.
    if (this.c.saveEverySteps > 0 && e.step % this.c.saveEverySteps === 0 && !e.lastOfEpoch) this.flush();
  }

  epochEnd(): void {
    this.flush();
  }

  close(_ctx: unknown, end: RunEnd): void {
    try {
      this.log.close(end.state, end.reason);
    } catch (e) {
      this.warn('closing the event file', e);
    }
  }
}
