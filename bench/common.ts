// Shared bench plumbing: timing, the PyTorch side run in the same process tree, one JSON line out.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve as resolvePath } from 'node:path';

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
  const out = execFileSync(PYTHON, ['-c', code, ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Resident memory (bytes) of a process and all its descendants, read from /proc. */
export function treeRss(rootPid: number): number {
  const parent = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(fields[1]));
      rss.set(Number(d), Number(fields[21]) * 4096);
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  for (const [pid, r] of rss) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      if (p === rootPid) {
        total += r;
        break;
      }
    }
  }
  return total;
}

/** Runs a command to completion, sampling the peak RSS of its whole process tree every 100 ms. */
export async function runMeasured(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; peakRssMb: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peak = 0;
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setInterval(() => {
      if (p.pid) peak = Math.max(peak, treeRss(p.pid));
    }, 100);
    p.on('error', reject);
    p.on('close', (code) => {
      clearInterval(timer);
      resolve({ code, stdout, stderr, peakRssMb: peak / 2 ** 20 });
    });
  });
}

/** The JSON object on the last line of a command's stdout. */
export function lastJson<T>(stdout: string, what: string): T {
  const line = stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`${what}: expected a JSON line, got: ${stdout.slice(-2000)}`);
  }
}

// dist/bench/common.js → the checkout's own build.
const DEFAULT_ADDON = fileURLToPath(new URL('../../build/Release/moco_native.node', import.meta.url));

/** Numeric leaves of a JSON object whose key starts with `ours`, by dotted path. */
function oursFigures(o: unknown, prefix = '', out = new Map<string, number>()): Map<string, number> {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (typeof v === 'number' && k.toLowerCase().startsWith('ours')) out.set(path, v);
      else oursFigures(v, path, out);
    }
  }
  return out;
}

/**
 * Runs a bench across libtorch builds and PyTorch versions: `--python A,B` names the peer's interpreters (default
 * Debian's /usr/bin/python3, PyTorch 1.13; e.g. also a torch2-venv.sh environment's bin/python), `--addon X,Y`
 * builds of our addon (default this checkout's build/Release/moco_native.node; e.g. one built with
 * LIBTORCH_USE_PYTORCH=1 against 2.13). With either flag, this process re-runs the bench once per (addon, python)
 * pair in a child process (MOCO_ADDON, MOCO_BENCH_PYTHON), each an ordinary same-run comparison of ours with that
 * peer, and prints one JSON line: every run, plus ours-on-addon-B over ours-on-addon-A for each `ours*` figure.
 * Returns true when it did (the caller then stops); false in a child or without the flags (the caller runs itself).
 * The two flags are removed from process.argv either way, so a bench's own argument parsing never sees them.
 */
export async function benchMatrix(bench: string): Promise<boolean> {
  const take = (flag: string): string[] | null => {
    const i = process.argv.findIndex((x) => x === flag || x.startsWith(`${flag}=`));
    if (i < 0) return null;
    const eq = process.argv[i]!.indexOf('=');
    const value = eq >= 0 ? process.argv[i]!.slice(eq + 1) : process.argv[i + 1];
    process.argv.splice(i, eq >= 0 ? 1 : 2);
    if (!value) throw new Error(`${bench}: ${flag} needs a comma-separated list`);
    return value.split(',').filter(Boolean);
  };
  const pythons = take('--python');
  const addons = take('--addon');
  if (process.env.MOCO_BENCH_MATRIX_CHILD || (!pythons && !addons)) return false;
  const pyList = pythons ?? [PYTHON];
  const addonList = addons ? addons.map((x) => resolvePath(x)) : [''];
  // Each interpreter's and each build's torch version, asked once (a Python start imports torch: seconds).
  const pyTorch = new Map(
    pyList.map((py) => [
      py,
      execFileSync(py, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).trim(),
    ]),
  );
  const addonTorch = new Map(
    addonList.map((addon) => {
      const used = addon || DEFAULT_ADDON;
      return [
        used,
        execFileSync(
          process.execPath,
          ['-e', `process.stdout.write(require(${JSON.stringify(used)}).buildInfo().torch)`],
          { encoding: 'utf8' },
        ),
      ];
    }),
  );
  const runs: { addon: string; ours_torch: string; python: string; peer_torch: string; result: unknown }[] = [];
  for (const addon of addonList) {
    for (const py of pyList) {
      const env = {
        ...process.env,
        MOCO_BENCH_MATRIX_CHILD: '1',
        MOCO_BENCH_PYTHON: py,
        ...(addon ? { MOCO_ADDON: addon } : {}),
      };
      const r = await runMeasured(process.execPath, process.argv.slice(1), { env });
      if (r.code !== 0)
        throw new Error(`${bench} with ${addon || 'this build'} and ${py} failed: ${r.stderr.slice(-2000)}`);
      const used = addon || DEFAULT_ADDON;
      runs.push({
        addon: used,
        ours_torch: addonTorch.get(used)!,
        python: py,
        peer_torch: pyTorch.get(py)!,
        result: lastJson(r.stdout, bench),
      });
    }
  }
  // Ours on each later addon against ours on the first, with the same peer (a throughput ratio > 1 or a time ratio < 1 favours the later build).
  const oursAcrossBuilds: Record<string, Record<string, number>> = {};
  for (const run of runs.filter((r) => r.addon !== runs[0]!.addon && r.python === runs[0]!.python)) {
    const base = oursFigures(runs[0]!.result);
    const mine = oursFigures(run.result);
    const ratios: Record<string, number> = {};
    for (const [k, v] of mine) if (base.has(k) && base.get(k)) ratios[k] = round(v / base.get(k)!);
    oursAcrossBuilds[`${run.ours_torch} / ${runs[0]!.ours_torch}`] = ratios;
  }
  console.log(JSON.stringify({ bench, matrix: runs, ours_across_builds: oursAcrossBuilds }));
  return true;
}
