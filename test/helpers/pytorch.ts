// Runs a PyTorch snippet on tensors from the test and returns its tensors: the parity oracle.
// Uses /usr/bin/python3 (Debian's python3-torch); the python3 first on PATH may lack torch.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { Tensor, getNumThreads } from '../../src/torch/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';

export const PYTHON = process.env.MOCO_TEST_PYTHON ?? '/usr/bin/python3';

export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) d = dirname(d);
  return d;
}

export function tmpDir(prefix = 'moco-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Executes `code` in PyTorch with the inputs bound as globals (`I` holds them all too, with `torch`, `F`, `nn`
 * in scope) and returns the tensors the code puts in the dict `O`.
 */
export function pytorch(
  code: string,
  inputs: Record<string, Tensor> = {},
  opts: { timeoutMs?: number } = {},
): Record<string, Tensor> {
  const dir = tmpDir();
  try {
    saveSafetensors(join(dir, 'in.safetensors'), inputs);
    const script = [
      'import sys, math',
      `sys.path.insert(0, ${JSON.stringify(join(repoRoot(), 'test', 'py'))})`,
      'import torch, torch.nn as nn, torch.nn.functional as F',
      `torch.set_num_threads(${getNumThreads()})`,
      'from st import load, save',
      'I, _meta = load(sys.argv[1])',
      'globals().update(I)',
      'O = {}',
      code,
      'save(O, sys.argv[2])',
    ].join('\n');
    writeFileSync(join(dir, 'run.py'), script);
    execFileSync(PYTHON, [join(dir, 'run.py'), join(dir, 'in.safetensors'), join(dir, 'out.safetensors')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 300_000,
    });
    return Object.fromEntries(loadSafetensors(join(dir, 'out.safetensors')).tensors);
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`PyTorch oracle failed: ${err.stderr?.toString() ?? err.message}`, { cause: e });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts same shape and |a−b| ≤ atol + rtol·|b| elementwise, naming the worst element. */
export function assertClose(
  actual: Tensor,
  expected: Tensor,
  label: string,
  tol: { rtol?: number; atol?: number } = {},
): void {
  const rtol = tol.rtol ?? (actual.dtype === 'float64' ? 1e-10 : 1e-5);
  const atol = tol.atol ?? (actual.dtype === 'float64' ? 1e-10 : 1e-6);
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`);
  const a = actual.toArray();
  const b = expected.toArray();
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const excess = Math.abs(a[i]! - b[i]!) - (atol + rtol * Math.abs(b[i]!));
    if (excess > worstExcess || Number.isNaN(a[i]!) !== Number.isNaN(b[i]!)) {
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
      worst = i;
    }
  }
  if (worst >= 0)
    assert.fail(`${label}: element ${worst} is ${a[worst]}, PyTorch gives ${b[worst]} (rtol ${rtol}, atol ${atol})`);
}

/**
 * Tolerance of the multi-step parity tests, which run in float64 on both sides. In float32 they compared float32
 * rounding as much as the algorithm: a pre-ReLU activation a few ulps from 0 takes the gradient through the ReLU
 * on one build and not on the other, and everything beneath moves. Measured (issue 13): MoCo symmetric, step 2,
 * layer2.0.bn1 output [0,39,3,6] was −3.05e−6 in PyTorch 1.13 and +7.0e−8 in 2.13 (other activations differing by
 * up to 7e−6) → that channel's bias gradient 10% apart, conv1.weight's gradient 1.4e−3 apart (relative norm); the
 * end-to-end NT-Xent test the same at the stem (bn1 [2,50,7,9], −1.2e−6), ours on 2.13 against either PyTorch.
 * In float64 the same tests agree to ≤ 1e−14 absolute on every leg; this tolerance is 1000× that.
 */
export const TOL64 = { rtol: 1e-9, atol: 1e-11 };

/** The split BatchNorm of the official CIFAR demo (and of ../shared/peer/torch_moco.py), for Python snippets. */
export const PY_SPLIT_BN = `
class SplitBN(nn.BatchNorm2d):
    def __init__(self, c, splits):
        super().__init__(c); self.splits = splits
    def forward(self, x):
        if not self.training: return super().forward(x)
        n, c, h, w = x.shape
        rm, rv = self.running_mean.repeat(self.splits), self.running_var.repeat(self.splits)
        y = F.batch_norm(x.view(-1, c * self.splits, h, w), rm, rv, self.weight.repeat(self.splits),
                         self.bias.repeat(self.splits), True, self.momentum, self.eps).view(n, c, h, w)
        self.running_mean.copy_(rm.view(self.splits, c).mean(0)); self.running_var.copy_(rv.view(self.splits, c).mean(0))
        return y
`;

/**
 * Python defining `f`: the query encoder of a moco-ts mechanism in the test's inputs (`encoder_q.*`), a
 * torchvision ResNet-18 with the CIFAR stem and SplitBN(2), in float64 (see {@link TOL64}), and `opt`, SGD lr 0.1,
 * momentum 0.9, wd 5e-4.
 */
export const PY_QUERY_ENCODER_SGD = (dim: number): string => `
import torchvision
${PY_SPLIT_BN}
f = torchvision.models.resnet18(num_classes=${dim}, norm_layer=lambda c: SplitBN(c, 2)).double()
f.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False).double(); f.maxpool = nn.Identity()
f.load_state_dict({k[len('encoder_q.'):]: v for k, v in I.items() if k.startswith('encoder_q.')})
opt = torch.optim.SGD(f.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
`;
