// glibc's allocator, tuned for a process that holds LanceDB (native/allocator.c says why). Loaded from
// lancedb.ts before LanceDB itself, so that its threads start under the arena cap.
import { createRequire } from 'node:module';
// The file itself, not torch/index.js: looking for this addon must not load libtorch.
import { findBuiltAddon } from '../torch/addon-file.js';

interface AllocatorBinding {
  glibc(): boolean;
  setArenaMax(n: number): boolean;
  setMmapThreshold(bytes: number): boolean;
  trim(): boolean;
  stats(): MallocStats | null;
}

/** glibc's `mallinfo2()`, bytes. */
export interface MallocStats {
  /** Heap obtained from the OS for the arenas (not counting chunks mapped on their own). */
  arena: number;
  /** Chunks mapped on their own (large allocations). */
  mmap: number;
  /** Bytes in use by the program. */
  inUse: number;
  /** Bytes held by malloc but free: what `trim` can return, where whole pages of it are free. */
  free: number;
}

/**
 * Arenas LanceDB's threads share (glibc's default: 8 per core). Each arena keeps what was freed into it, so
 * memory freed by one phase is not reused by threads of the next that land in another arena.
 */
export const ARENA_MAX = 2;

/**
 * Allocations from this size up (bytes; 1 MiB) get pages of their own, returned to the OS when freed. glibc's
 * default starts at 128 KiB and rises after each large free up to 32 MiB, after which LanceDB's multi-MiB
 * batch and shuffle buffers come from the arenas and leave them fragmented. Measured at 1M × 128-d append +
 * index build (docs/collections.md): peak RSS 272–332 MiB with the arena cap and trimming alone, 238–252 MiB with
 * this too. A libtorch forward in the same process (`moco index`; ResNet-18 CIFAR, batch 64) faulted about as many
 * pages as with glibc's moving threshold (−3% at width 16, +3% at width 64); 128 KiB cost 35% more faults.
 */
export const MMAP_THRESHOLD = 2 ** 20;

/** How often {@link trimWhile} returns free memory to the OS, ms. */
export const TRIM_EVERY_MS = 500;

let binding: AllocatorBinding | null | undefined;

function load(): AllocatorBinding | null {
  if (binding !== undefined) return binding;
  // Built by `npm run build:native` with the libtorch addon; without it nothing is tuned, nothing breaks.
  const p = findBuiltAddon('moco_allocator.node');
  binding = p ? (createRequire(import.meta.url)(p) as AllocatorBinding) : null;
  return binding;
}

/**
 * Caps glibc's arenas at {@link ARENA_MAX} for threads started from now on and fixes the mmap threshold at
 * {@link MMAP_THRESHOLD}, each unless its glibc variable (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`) is set:
 * glibc read that at start, and the user's choice stands. Returns what was set.
 */
export function tuneAllocator(): { arenaMax: boolean; mmapThreshold: boolean } {
  const b = load();
  const ok = b !== null && b.glibc();
  return {
    arenaMax: ok && !process.env.MALLOC_ARENA_MAX && b.setArenaMax(ARENA_MAX),
    mmapThreshold: ok && !process.env.MALLOC_MMAP_THRESHOLD_ && b.setMmapThreshold(MMAP_THRESHOLD),
  };
}

/** Returns malloc's free whole pages to the OS (`malloc_trim(0)`); false where nothing was released or not glibc. */
export function trimFreeMemory(): boolean {
  const b = load();
  return b !== null && b.trim();
}

/** glibc's allocator statistics, or null where the C library is not glibc or the addon is not built. */
export function mallocStats(): MallocStats | null {
  return load()?.stats() ?? null;
}

/**
 * Runs `work` (a LanceDB write, index build or optimize: native work on other threads, the event loop free)
 * while returning malloc's free pages to the OS every `everyMs`, and once at the end.
 */
export async function trimWhile<T>(work: () => Promise<T>, everyMs = TRIM_EVERY_MS): Promise<T> {
  if (load() === null) return work();
  const timer = setInterval(trimFreeMemory, everyMs);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    trimFreeMemory();
  }
}
