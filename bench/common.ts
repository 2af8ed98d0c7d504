// Shared bench plumbing: timing, the PyTorch side run in the same process tree, one JSON line out.
import { execFileSync } from 'node:child_process';

export const PYTHON = process.env.MOCO_BENCH_PYTHON ?? '/usr/bin/python3';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median wall time of `fn` in ms over `reps` runs after `warmup` runs. */
export function timeMs(fn: () => void, reps: number, warmup = 2): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

/** Runs a Python program and parses the JSON object on its last stdout line. */
export function runPythonJson<T>(code: string, args: string[] = [], timeoutMs = 1_800_000): T {
  const out = execFileSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
