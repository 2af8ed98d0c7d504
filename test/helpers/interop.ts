// Runs test/py/interop.py (fixtures written by PyTorch/torchvision, reference features) for the interop tests.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PYTHON, repoRoot } from './pytorch.js';

/** Runs `interop.py ...args` in /usr/bin/python3; throws with Python's stderr on failure. */
export function interop(...args: string[]): void {
  try {
    execFileSync(PYTHON, [join(repoRoot(), 'test', 'py', 'interop.py'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`interop.py ${args.join(' ')} failed: ${err.stderr?.toString() ?? err.message}`, { cause: e });
  }
}

/** Runs a Python snippet (no torch needed) and returns its stdout. */
export function python(code: string, args: string[] = []): string {
  return execFileSync(PYTHON, ['-c', code, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });
}
