// The linear protocol's line an epoch (main_lincls.py prints the same figures), as an observer.
import type { EpochEvent, LoopContext } from '../../loop/index.js';
import type { EpochMetrics, LinearLoop, LinearObserver } from '../linear-probe.js';

export class EpochLogObserver implements LinearObserver {
  epochEnd(ctx: LoopContext<LinearLoop>, { metrics: m }: EpochEvent<EpochMetrics>): void {
    ctx.log(
      `epoch ${m.epoch + 1}/${ctx.config.epochs}: lr ${m.lr.toPrecision(3)}, ` +
        `train loss ${m.trainLoss.toFixed(4)}, train top-1 ${m.trainTop1.toFixed(2)}, ` +
        `val top-1 ${m.val.top1.toFixed(2)}, top-5 ${m.val.top5.toFixed(2)} (${m.seconds.toFixed(1)} s)`,
    );
  }
}
