// Reads TensorBoard event files with an independent reader: /usr/bin/python3 with google.protobuf (Debian's
// python3-protobuf) and test/py/tbproto/event.proto compiled by protoc (protobuf-compiler) into a temp dir.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { PYTHON, repoRoot, tmpDir } from './pytorch.js';

export interface ReadValue {
  tag: string;
  kind: 'simple_value' | 'image' | 'histo' | 'tensor';
  value?: number;
  width?: number;
  height?: number;
  num?: number;
  min?: number;
  max?: number;
  bucket?: number[];
  bucket_limit?: number[];
  plugin?: string;
  text?: string[];
}
export interface ReadEvent {
  wall_time: number;
  step: number;
  file_version?: string;
  session_log?: string;
  values?: ReadValue[];
}
export interface ReadFile {
  path: string;
  events: ReadEvent[];
}

/** Every event of `files`, parsed in Python; throws with the reader's message on a CRC, parse or PNG error. */
export function readEventFiles(files: string[]): ReadFile[] {
  const dir = tmpDir('moco-tbproto-');
  try {
    const protoDir = join(repoRoot(), 'test', 'py', 'tbproto');
    execFileSync('protoc', [`--proto_path=${protoDir}`, `--python_out=${dir}`, join(protoDir, 'event.proto')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = execFileSync(PYTHON, [join(repoRoot(), 'test', 'py', 'tfevents_read.py'), dir, ...files], {
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 28,
      timeout: 300_000,
    });
    return (JSON.parse(out.toString()) as { files: ReadFile[] }).files;
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    throw new Error(`event file reader failed: ${err.stderr?.toString() || err.message}`, { cause: e });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The scalars TensorBoard would show for a run's files read in order: a SessionLog START at step s drops the
 * earlier events at steps ≥ s (TensorBoard's event_accumulator purge). Keyed `tag@step`.
 */
export function visibleScalars(files: ReadFile[]): Map<string, number> {
  const seen: { tag: string; step: number; value: number }[] = [];
  for (const f of files) {
    for (const e of f.events) {
      if (e.session_log === 'START') {
        for (let i = seen.length - 1; i >= 0; i--) if (seen[i]!.step >= e.step) seen.splice(i, 1);
      }
      for (const v of e.values ?? [])
        if (v.kind === 'simple_value') seen.push({ tag: v.tag, step: e.step, value: v.value! });
    }
  }
  const m = new Map<string, number>();
  for (const s of seen) {
    const key = `${s.tag}@${s.step}`;
    if (m.has(key)) throw new Error(`${key} written twice and not purged`);
    m.set(key, s.value);
  }
  return m;
}
