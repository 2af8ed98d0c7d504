// The TensorBoard scalars of the linear protocol (lincls/*) and of fine-tuning (finetune/*) as an observer: one
// set an epoch, at its step count.
import { EventWriter } from '../../io/tfevents.js';
import type { EpochEvent, LoopObserver } from '../../loop/index.js';
import type { EpochMetrics } from '../linear-probe.js';
import type { EpochMetricsLoop } from './epoch-log-observer.js';

export class LinclsEventsObserver implements LoopObserver<EpochMetricsLoop> {
  private readonly events: EventWriter;

  /**
   * Opens a new event file in `dir`; a resumed run (`resumedAtStep`: the steps it had done) starts a session so
   * that TensorBoard drops an earlier file's epochs after the one resumed from, as pre-training does. `prefix`
   * names the scalars' group (default 'lincls').
   */
  constructor(
    dir: string,
    resumedAtStep?: number,
    private readonly prefix = 'lincls',
  ) {
    this.events = new EventWriter(dir);
    if (resumedAtStep !== undefined) this.events.sessionStart(resumedAtStep + 1);
  }

  epochEnd(_ctx: unknown, { metrics: m }: EpochEvent<EpochMetrics>): void {
    const put = (tag: string, v: number): void => this.events.scalar(`${this.prefix}/${tag}`, v, m.steps);
    put('train_loss', m.trainLoss);
    put('train_acc1', m.trainTop1);
    put('val_loss', m.val.loss);
    put('val_acc1', m.val.top1);
    put('val_acc5', m.val.top5);
    put('lr', m.lr);
    this.events.flush();
  }

  close(): void {
    this.events.close();
  }
}
