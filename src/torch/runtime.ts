// Process-wide libtorch settings.
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { Tensor } from './tensor.js';

/** Seeds libtorch's default generator (randn, rand, randperm, dropout, init). */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`manualSeed: seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}
/** The default generator's state (uint8 tensor), to store in a checkpoint. */
export function getRngState(): Tensor { return new Tensor(native.getRngState()); }
export function setRngState(state: Tensor): void { native.setRngState(state.native); }

/** Intra-op threads for libtorch. The addon starts with one per core (libtorch's own default here is 1). */
export function setNumThreads(n: number): void { native.setNumThreads(n); }
export function getNumThreads(): number { return native.getNumThreads(); }
export function defaultThreads(): number { return availableParallelism(); }

export const cuda = {
  isAvailable: (): boolean => native.cudaIsAvailable(),
  deviceCount: (): number => native.cudaDeviceCount(),
};

/** libtorch version and build configuration. */
export function buildInfo(): { torch: string; config: string; parallel: string; cxx11Abi: boolean; cuda: boolean } {
  return native.buildInfo();
}
export const version: string = native.buildInfo().torch;
