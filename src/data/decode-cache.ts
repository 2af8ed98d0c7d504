// The disk cache of decoded datasets: one file per dataset variant, bounded in size with least-recently-used
// eviction, so that experimenting with many folders and image sizes does not fill the disk.
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/** Default bound of the cache: 8 GiB (about fifty CIFAR-10-sized datasets). */
export const DEFAULT_CACHE_MAX_BYTES = 8 * 2 ** 30;

/**
 * The cache directory for decoded datasets: `$MOCO_CACHE_DIR`, else `$XDG_CACHE_HOME/moco-ts`, else
 * `~/.cache/moco-ts`, else `<os tmp>/moco-ts-cache`.
 */
export function cacheDir(): string {
  if (process.env.MOCO_CACHE_DIR) return process.env.MOCO_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME ?? (homedir() ? join(homedir(), '.cache') : '');
  return base ? join(base, 'moco-ts') : join(tmpdir(), 'moco-ts-cache');
}

/** Parses a size such as `8G`, `500M`, `64k` or a byte count (binary units). */
export function parseBytes(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m) throw new Error(`${what} '${text}': expected a size such as 8G, 500M or a number of bytes`);
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.floor(Number(m[1]) * unit);
}

/** The bound of the cache in bytes: `$MOCO_CACHE_MAX` (e.g. `20G`; `0` keeps nothing), else {@link DEFAULT_CACHE_MAX_BYTES}. */
export function cacheMaxBytes(): number {
  const v = process.env.MOCO_CACHE_MAX;
  return v === undefined || v === '' ? DEFAULT_CACHE_MAX_BYTES : parseBytes(v, 'MOCO_CACHE_MAX');
}

export interface CacheEntry {
  file: string;
  bytes: number;
  /** Last written or read (ms since the epoch): the file's mtime, touched on every hit. */
  lastUsedMs: number;
}

/** The cache's files, most recently used first. */
export function listCache(dir = cacheDir()): CacheEntry[] {
  if (!existsSync(dir)) return [];
  const out: CacheEntry[] = [];
  for (const name of readdirSync(dir)) {
    if (!/^decoded-[0-9a-f]+\.bin$/.test(name)) continue;
    try {
      const s = statSync(join(dir, name));
      out.push({ file: join(dir, name), bytes: s.size, lastUsedMs: s.mtimeMs });
    } catch {
      // Removed meanwhile by another process.
    }
  }
  return out.sort((a, b) => b.lastUsedMs - a.lastUsedMs);
}

/** Marks a cache file as just used (its mtime; atime is unreliable under noatime/relatime mounts). */
export function touchCacheFile(file: string): void {
  const now = new Date();
  try {
    utimesSync(file, now, now);
  } catch {
    /* read-only cache: eviction order is only a hint */
  }
}

/**
 * Deletes least-recently-used files until the cache holds at most `maxBytes`; `keep` is never deleted (the
 * file just written). Returns the deleted entries.
 */
export function evictCache(maxBytes = cacheMaxBytes(), keep?: string, dir = cacheDir()): CacheEntry[] {
  const entries = listCache(dir);
  let total = entries.reduce((s, e) => s + e.bytes, 0);
  const removed: CacheEntry[] = [];
  for (const e of [...entries].reverse()) {
    if (total <= maxBytes) break;
    if (e.file === keep) continue;
    rmSync(e.file, { force: true });
    total -= e.bytes;
    removed.push(e);
  }
  return removed;
}

/** Deletes every cached dataset (and stale temp files). Returns the bytes freed. */
export function clearCache(dir = cacheDir()): number {
  if (!existsSync(dir)) return 0;
  let freed = 0;
  for (const name of readdirSync(dir)) {
    if (!/^decoded-[0-9a-f]+\.bin(\.\d+\.tmp)?$/.test(name)) continue;
    const f = join(dir, name);
    try {
      freed += statSync(f).size;
    } catch {
      continue;
    }
    rmSync(f, { force: true });
  }
  return freed;
}
