// Mixed precision as torch.autocast: inside the region, the ops on autocast's lower-precision list (convolutions,
// matmuls, linear layers) run in bfloat16 or float16, the precision-sensitive ones (softmax, losses, norms) stay
// float32; parameters remain float32 (the master weights), so gradients and the optimizer step are float32.
import { readFileSync } from 'node:fs';
import { native } from './native.js';
import { dtypeCode, type DType } from './dtype.js';

/** The low-precision types autocast knows. */
export type AutocastDType = Extract<DType, 'bfloat16' | 'float16'>;

/**
 * Runs `fn` with autocast on for `deviceType` ('cpu' or 'cuda') in `dtype` (default bfloat16), as
 * `with torch.autocast(device_type, dtype):`. Regions nest; the cast cache is freed when the outermost one ends.
 * `fn` must be synchronous: the switch is libtorch's per-thread state, which an `await` would leak to other work.
 */
export function autocast<T>(deviceType: 'cpu' | 'cuda', fn: () => T, dtype: AutocastDType = 'bfloat16'): T {
  if (deviceType !== 'cpu' && deviceType !== 'cuda')
    throw new TypeError(`autocast: device type must be 'cpu' or 'cuda', got '${String(deviceType)}'`);
  const prev = native.autocastEnter(deviceType, true, dtypeCode(dtype));
  try {
    const out = fn();
    if (out instanceof Promise)
      throw new TypeError('autocast: fn returned a Promise; autocast regions must be synchronous');
    return out;
  } finally {
    native.autocastExit(deviceType, prev.enabled, prev.dtype);
  }
}

let bf16Flags: string[] | null = null;

/**
 * The CPU features that make bfloat16 compute native (AVX-512 BF16, AMX-BF16) rather than emulated through
 * float32 conversions, read from /proc/cpuinfo; empty where there are none (or no /proc). Without them, CPU
 * autocast still computes correctly but no faster than float32 — usually slower.
 */
export function cpuBf16Features(): string[] {
  if (bf16Flags) return bf16Flags;
  let flags: string;
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '';
  } catch {
    flags = '';
  }
  const have = new Set(flags.trim().split(/\s+/));
  bf16Flags = ['avx512_bf16', 'amx_bf16'].filter((f) => have.has(f));
  return bf16Flags;
}
