// Moving duplicates aside (`moco dedup --move-to`): nothing a group keeps is ever moved, one file reached by
// several paths is one file, nothing at the destination is overwritten, and the journal of the moves is on disk
// before each move happens.
import {
  closeSync,
  copyFileSync,
  constants,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import type { DupGroup } from './dedup.js';

/** The journal file a `--move-to` folder holds: one JSON object a line, appended by every run. */
export const MOVE_JOURNAL = 'moved.jsonl';

/** One entry of the journal: `state` 'moving' is written (and synced) before the move, 'moved' after it. */
export interface MoveEntry {
  /** When the run started (ISO 8601): one run's lines share it. */
  run: string;
  state: 'moving' | 'moved';
  /** Absolute paths. */
  from: string;
  to: string;
  sha256: string;
}

export interface MoveResult {
  moved: { from: string; to: string }[];
  /** Duplicates not moved: the same file as something a group keeps, or gone. */
  kept: { path: string; reason: string }[];
  /** The journal appended to. */
  journal: string;
}

const identity = (st: Stats): string => `${st.dev}:${st.ino}`;

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

/**
 * Moves every duplicate of `groups` under `dir`, keeping its path below the common folder of the groups'
 * members. A duplicate that is the same file (device + inode, whatever the path) as a keeper — or as another
 * duplicate already moved — stays. A name taken at the destination gets a ` (1)`, ` (2)`, … suffix; nothing
 * is overwritten. Each move is journaled to `dir/moved.jsonl` (fsynced) before it happens and confirmed after,
 * so an interrupted run leaves a journal of exactly what moved.
 */
export function moveDuplicates(groups: readonly DupGroup[], dir: string): MoveResult {
  const kept: MoveResult['kept'] = [];
  const protectedIds = new Map<string, string>();
  for (const g of groups) {
    const st = statOrNull(g.keeper.path);
    if (st) protectedIds.set(identity(st), g.keeper.path);
  }
  const todo: { path: string; sha256: string }[] = [];
  const taken = new Set<string>();
  for (const g of groups) {
    for (const d of g.duplicates) {
      const st = statOrNull(d.path);
      if (!st) {
        kept.push({ path: d.path, reason: 'no longer exists' });
        continue;
      }
      const id = identity(st);
      const keeper = protectedIds.get(id);
      if (keeper !== undefined) {
        kept.push({ path: d.path, reason: `the same file as ${keeper}, which is kept` });
        continue;
      }
      if (taken.has(id)) {
        kept.push({ path: d.path, reason: 'the same file as another duplicate, moved once' });
        continue;
      }
      taken.add(id);
      todo.push({ path: resolve(d.path), sha256: d.sha256 });
    }
  }
  const journal = join(resolve(dir), MOVE_JOURNAL);
  if (!todo.length) return { moved: [], kept, journal };
  // Paths are kept below the common folder of every group member, keepers too, so that a duplicate lands at the
  // same place whatever else moved with it.
  const members = groups.flatMap((g) => [g.keeper, ...g.duplicates].map((m) => resolve(m.path)));
  let common = dirname(members[0]!);
  for (const p of members) while (!p.startsWith(`${common}/`) && common !== '/') common = dirname(common);
  mkdirSync(dir, { recursive: true });
  const run = new Date().toISOString();
  const fd = openSync(journal, 'a');
  const moved: MoveResult['moved'] = [];
  try {
    const log = (e: MoveEntry): void => {
      writeSync(fd, `${JSON.stringify(e)}\n`);
      fsyncSync(fd);
    };
    for (const t of todo) {
      const to = freeName(join(resolve(dir), relative(common, t.path)));
      mkdirSync(dirname(to), { recursive: true });
      log({ run, state: 'moving', from: t.path, to, sha256: t.sha256 });
      moveNoClobber(t.path, to);
      log({ run, state: 'moved', from: t.path, to, sha256: t.sha256 });
      moved.push({ from: t.path, to });
    }
  } finally {
    closeSync(fd);
  }
  return { moved, kept, journal };
}

/** `path`, or `name (1).ext`, `name (2).ext`, … : the first that does not exist. */
function freeName(path: string): string {
  if (!existsSync(path)) return path;
  const ext = extname(path);
  const stem = path.slice(0, path.length - ext.length);
  for (let i = 1; ; i++) {
    const p = `${stem} (${i})${ext}`;
    if (!existsSync(p)) return p;
  }
}

/** Moves a file without ever replacing one at `to` (rename(2) would): a hard link then an unlink, or across file systems an exclusive copy then an unlink. */
function moveNoClobber(from: string, to: string): void {
  try {
    linkSync(from, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP') throw e;
    copyFileSync(from, to, constants.COPYFILE_EXCL);
    const fd = openSync(to, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  unlinkSync(from);
}
