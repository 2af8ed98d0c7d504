// What people look at beside a pre-training run's files: report.html (written however the run ends) and the kNN
// monitor's nearest-neighbour grids. `moco pretrain` adds them to its run; a sweep's cells load this module by
// its URL ({@link RUN_VIEWS}) in their own process, since train/ sits below views/.
import type { NeighbourGridRenderer, TrainObserver, Warn } from '../train/index.js';
import { ReportObserver } from './report-observer.js';
import { renderNeighbourGrid } from './neighbour-grid.js';

/** The observers that write a run's views into `out` (report.html); `warn` is told when one cannot be written. */
export function runObservers(out: string, warn: Warn): TrainObserver[] {
  return [new ReportObserver(out, warn)];
}

/** Draws each kNN evaluation's nearest-neighbour grid into the run log. */
export const neighbourGrid: NeighbourGridRenderer = renderNeighbourGrid;

/** This module's URL: pass it as `SweepOptions.cellViews` for report.html and neighbour grids in every cell. */
export const RUN_VIEWS: string = import.meta.url;
