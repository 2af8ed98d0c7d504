// Options and helpers shared by the evaluation commands (lincls, knn, embed, search).
import { setNumThreads } from '../../torch/index.js';
import type { FeatureKind } from '../../eval/index.js';

/** Parses a positive integer option or fails naming it. */
export function int(name: string, v: string | undefined, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer ≥ ${min}, got '${v}'`);
  return n;
}

/** Parses a finite number option. */
export function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}: expected a number, got '${v}'`);
  return n;
}

/** `--feature backbone|head`: pooled backbone features or the projection head's output. */
export function feature(v: string): FeatureKind {
  if (v !== 'backbone' && v !== 'head') throw new Error(`--feature must be backbone or head, got '${v}'`);
  return v;
}

/** `--threads N`: libtorch intra-op threads. */
export function applyThreads(v: string | undefined): void {
  const n = int('--threads', v);
  if (n !== undefined) setNumThreads(n);
}

/** A progress reporter on stderr that rewrites one line (only when stderr is a terminal; else every 10%). */
export function progress(label: string): (done: number, total: number) => void {
  let lastPct = -10;
  return (done, total) => {
    const pct = total ? Math.floor((100 * done) / total) : 100;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${label}: ${done}/${total} (${pct}%)${done >= total ? '\n' : ''}`);
    } else if (pct >= lastPct + 10 || done >= total) {
      lastPct = pct;
      process.stderr.write(`${label}: ${done}/${total} (${pct}%)\n`);
    }
  };
}
