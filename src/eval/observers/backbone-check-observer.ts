// main_lincls.py's sanity check as an observer: after the first epoch of a run (or of its resumption) the frozen
// backbone's weights and BN statistics must be exactly as they were before it.
import type { Tensor } from '../../torch/index.js';
import type { Module } from '../../nn/index.js';
import type { EpochEvent, LoopContext } from '../../loop/index.js';
import { checkBackboneUnchanged, snapshotBackbone } from '../encoder.js';
import type { EpochMetrics, LinearLoop, LinearObserver } from '../linear-probe.js';

export class BackboneCheckObserver implements LinearObserver {
  private snapshot: Map<string, Tensor> | null;

  /** Copies the backbone's tensors now (before any features are computed); `close` frees the copy. */
  constructor(private readonly model: Module) {
    this.snapshot = snapshotBackbone(model);
  }

  epochEnd(ctx: LoopContext<LinearLoop>, e: EpochEvent<EpochMetrics>): void {
    if (!this.snapshot) return;
    checkBackboneUnchanged(this.model, this.snapshot);
    ctx.log(`sanity check passed: backbone unchanged after epoch ${e.epoch + 1}`);
    this.release();
  }

  close(): void {
    this.release();
  }

  /** Frees the copy (also when the run never started). */
  release(): void {
    for (const t of this.snapshot?.values() ?? []) t.dispose();
    this.snapshot = null;
  }
}
