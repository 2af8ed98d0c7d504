// Checkpoints named by a run directory: its `last` pointer, and when that file is damaged, the newest intact one.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const CHECKPOINT_FILE = /^checkpoint.*\.(safetensors|pth\.tar|pth)$/;

/** The checkpoint files of a run directory, newest first: the one `last` names, then the others by name, descending. */
export function checkpointCandidates(dir: string): string[] {
  const names = readdirSync(dir)
    .filter((f) => CHECKPOINT_FILE.test(f))
    .sort()
    .reverse();
  const lastFile = join(dir, 'last');
  const pointed = existsSync(lastFile) ? readFileSync(lastFile, 'utf8').trim() : '';
  const ordered = pointed && names.includes(pointed) ? [pointed, ...names.filter((n) => n !== pointed)] : names;
  return ordered.map((n) => join(dir, n));
}

export interface LoadedFrom<T> {
  file: string;
  value: T;
}

/**
 * Loads the checkpoint `path` names with `load`: a file as is (its errors unchanged); a run directory's newest
 * checkpoint, falling back — with a warning that names both files — to the newest one that loads when that one
 * is damaged (truncated, bit rot, an old format). When none loads, the error names every file and why.
 */
export function loadCheckpointFrom<T>(
  path: string,
  load: (file: string) => T,
  warn: (message: string) => void = defaultWarn,
): LoadedFrom<T> {
  if (!existsSync(path)) throw new Error(`checkpoint '${path}' not found`);
  if (!statSync(path).isDirectory()) return { file: path, value: load(path) };
  const files = checkpointCandidates(path);
  if (!files.length)
    throw new Error(`${path}: a run directory needs checkpoint_*.safetensors (or .pth.tar) files; none found`);
  const failures: string[] = [];
  for (const file of files) {
    try {
      const value = load(file);
      if (failures.length) warn(`${failures.join('; ')}; using ${file}, the newest intact checkpoint in ${path}`);
      return { file, value };
    } catch (e) {
      failures.push(`${file} is damaged (${(e as Error).message})`);
    }
  }
  throw new Error(`${path}: no intact checkpoint: ${failures.join('; ')}`);
}

function defaultWarn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}
