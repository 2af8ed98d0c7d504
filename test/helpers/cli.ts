// The `moco` command as a child process (the built dist/src/cli/main.js), for tests of what a user sees.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './pytorch.js';

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

/** Starts `moco ...args`; `done` resolves when it exits, with its exit code, stdout and stderr. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { proc: ReturnType<typeof spawn>; done: Promise<CliResult> } {
  const proc = spawn(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const done = new Promise<CliResult>((resolve) => proc.on('close', (code) => resolve({ code, out, err })));
  return { proc, done };
}
