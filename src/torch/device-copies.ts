// Non-blocking device→host copies land in pinned host memory while the CPU runs on; JS must not read that memory
// before the device has finished. Rather than track every view of every destination, one flag says "a copy may be
// in flight", and every read of tensor memory from JS synchronises once while it is set.
import { native } from './native.js';

export const deviceCopies = { pending: false };

/** Synchronises the current CUDA device if a non-blocking device→host copy may still be in flight. */
export function settleDeviceCopies(): void {
  if (!deviceCopies.pending) return;
  native.cudaSynchronize();
  deviceCopies.pending = false;
}
