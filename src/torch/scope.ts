// Explicit native-memory management: tidy() scopes dispose what they created, memory() counts what lives.
import { native } from './native.js';

/** Anything that owns native memory. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Disposable>[] = [];
/** Open createdBytes() calls: while any is, tidy() scopes hand every tensor to their parent (see createdBytes). */
let counting = 0;

/** Called by every tensor constructor: the innermost open tidy() scope owns it. */
export function track(t: Disposable): void {
  const s = scopes[scopes.length - 1];
  if (s) s.add(t);
}

/** Removes a tensor from every open scope so that it outlives them (model parameters, queues, caches). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(v: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if ('dispose' in v && 'isDisposed' in v) {
    out.add(v as Disposable);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, seen);
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those reachable from its return value
 * (a tensor, or arrays / plain objects / Maps of tensors), which move to the enclosing scope.
 * `fn` must be synchronous: an async body would let other work's tensors into this scope.
 */
export function tidy<T>(fn: () => T): T {
  const { result, scope } = inScope(fn);
  if (result instanceof Promise) throw new Error('tidy(): the function must be synchronous, it returned a Promise');
  const kept = new Set<Disposable>();
  collect(result, kept, new Set());
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (kept.has(t) || counting > 0) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Runs `fn` with a new innermost scope and returns that scope with the result; on a throw, disposes the scope's tensors. */
function inScope<T>(fn: () => T): { result: T; scope: Set<Disposable> } {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  return { result, scope };
}

/** Disposes every tensor found in `v` (a tensor, arrays / objects / Maps of them). */
export function dispose(v: unknown): void {
  const all = new Set<Disposable>();
  collect(v, all, new Set());
  for (const t of all) t.dispose();
}

/**
 * Live native tensors (wrappers not yet disposed or collected) and their bytes: `bytes` on the host (what V8 is
 * told about), `cudaBytes` on CUDA devices (never reported to V8). Views count their own extent.
 */
export function memory(): { tensors: number; bytes: number; cudaBytes: number } {
  return native.memory();
}

/**
 * Runs `fn` in a tidy scope and returns the bytes of the distinct storages held by the tensors it created (views
 * and in-place results of one storage counted once, at their largest extent), then disposes them. Scopes opened
 * inside `fn` free nothing meanwhile, so every output of a forward counts: an upper bound of what it holds for
 * backward (a model that frees its unsaved intermediates per block, as the ViT, holds less).
 */
export function createdBytes(fn: () => void): number {
  counting++;
  let created: ReturnType<typeof inScope<void>>;
  try {
    created = inScope(fn);
  } finally {
    counting--;
  }
  const { scope } = created;
  const byStorage = new Map<bigint, number>();
  for (const t of scope) {
    const tensor = t as unknown as { native?: { dataPtr(): bigint }; nbytes?: number };
    if (!t.isDisposed && tensor.native && tensor.nbytes) {
      const p = tensor.native.dataPtr();
      byStorage.set(p, Math.max(byStorage.get(p) ?? 0, tensor.nbytes));
    }
    t.dispose();
  }
  let total = 0;
  for (const b of byStorage.values()) total += b;
  return total;
}
