// The line an epoch of the linear protocol and of fine-tuning (main_lincls.py prints the same figures), as an
// observer.
import type { EpochEvent, LoopContext, LoopObserver, LoopTypes } from '../../loop/index.js';
import type { EpochMetrics, LinearLoop } from '../linear-probe.js';

/** The loop types of a run that reports {@link EpochMetrics} each epoch and knows its epochs. */
export type EpochMetricsLoop = LoopTypes & { config: { epochs: number }; metrics: EpochMetrics };

export class EpochLogObserver<T extends EpochMetricsLoop = LinearLoop> implements LoopObserver<T> {
  epochEnd(ctx: LoopContext<T>, { metrics: m }: EpochEvent<EpochMetrics>): void {
    ctx.log(
      `epoch ${m.epoch + 1}/${ctx.config.epochs}: lr ${m.lr.toPrecision(3)}, ` +
        `train loss ${m.trainLoss.toFixed(4)}, train top-1 ${m.trainTop1.toFixed(2)}, ` +
        `val top-1 ${m.val.top1.toFixed(2)}, top-5 ${m.val.top5.toFixed(2)} (${m.seconds.toFixed(1)} s)`,
    );
  }
}
