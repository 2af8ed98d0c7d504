// Engine benchmark: the same ops through moco-ts and through PyTorch, same machine, same thread count.
// Prints one JSON line: per case ours_ms, pytorch_ms, ratio (ours / pytorch; ≤ 1.05 is the target).
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { round, runPythonJson, timeMs, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('engine')) process.exit(0);

const threads = torch.getNumThreads();
const reps = Number(process.env.BENCH_REPS ?? 10);

function ours(): Record<string, number> {
  torch.manualSeed(0);
  const x = torch.randn([64, 64, 32, 32]).requiresGrad_(true);
  const w = torch.randn([64, 64, 3, 3]).mul(0.05).requiresGrad_(true);
  const conv = timeMs(
    () =>
      torch.tidy(() => {
        const y = F.conv2d(x, w, null, { padding: 1 });
        y.sum().backward();
        x.grad = null;
        w.grad = null;
        return undefined;
      }),
    reps,
  );
  const a = torch.randn([4096, 4096]);
  const b = torch.randn([4096, 4096]);
  const mm = timeMs(
    () =>
      torch.tidy(() => {
        a.mm(b);
        return undefined;
      }),
    Math.max(3, reps >> 1),
  );
  return { conv2d_fwd_bwd: conv, matmul_4096: mm };
}

const PY = `
import json, sys, time, torch, torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1])); reps = int(sys.argv[2])
def t(fn, n, warm=2):
    for _ in range(warm): fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1000)
    ts.sort(); m = len(ts) // 2
    return ts[m] if len(ts) % 2 else (ts[m - 1] + ts[m]) / 2
torch.manual_seed(0)
x = torch.randn(64, 64, 32, 32, requires_grad=True)
w = (torch.randn(64, 64, 3, 3) * 0.05).requires_grad_()
def conv():
    F.conv2d(x, w, padding=1).sum().backward(); x.grad = None; w.grad = None
a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
out = {"conv2d_fwd_bwd": t(conv, reps), "matmul_4096": t(lambda: a @ b, max(3, reps // 2))}
print(json.dumps(out))
`;

// Alternate the two sides so that drift of a shared machine hits both alike.
const mine: Record<string, number[]> = {};
const theirs: Record<string, number[]> = {};
for (let round_ = 0; round_ < 2; round_++) {
  for (const [k, v] of Object.entries(ours())) (mine[k] ??= []).push(v);
  for (const [k, v] of Object.entries(runPythonJson<Record<string, number>>(PY, [String(threads), String(reps)])))
    (theirs[k] ??= []).push(v);
}
const result: Record<string, unknown> = { bench: 'engine', threads, torch: torch.version };
for (const k of Object.keys(mine)) {
  const o = Math.min(...mine[k]!);
  const p = Math.min(...theirs[k]!);
  result[k] = { ours_ms: round(o), pytorch_ms: round(p), ratio: round(o / p) };
}
console.log(JSON.stringify(result));
