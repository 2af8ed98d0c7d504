// Process-wide libtorch settings.
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { deviceCopies } from './device-copies.js';

/** Seeds libtorch's default generator (randn, rand, randperm, dropout, init). */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0)
    throw new RangeError(`manualSeed: seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}
/** The default CPU generator's state (uint8 tensor), to store in a checkpoint: the per-device pair with `'cpu'`. */
export function getRngState(): Tensor {
  return new Tensor(native.getGeneratorState('cpu'));
}
export function setRngState(state: Tensor): void {
  native.setGeneratorState('cpu', state.native);
}
/** The default generator state of any device (`'cpu'`, `'cuda:0'`, …), as torch.cuda.get_rng_state(i). */
export function getGeneratorState(device: string): Tensor {
  return new Tensor(native.getGeneratorState(device));
}
export function setGeneratorState(device: string, state: Tensor): void {
  native.setGeneratorState(device, state.native);
}

/** Intra-op threads for libtorch. The addon starts with one per core (libtorch's own default here is 1). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
export function defaultThreads(): number {
  return availableParallelism();
}

/** Figures of libtorch's CUDA caching allocator for one device, in bytes (torch.cuda.memory_allocated and co). */
export interface CudaMemory {
  /** Bytes in live tensors. */
  allocated: number;
  /** Bytes the caching allocator holds from the driver (allocated plus cached free blocks). */
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
}

export const cuda = {
  isAvailable: (): boolean => native.cudaIsAvailable(),
  deviceCount: (): number => native.cudaDeviceCount(),
  /** Makes device `index` current for this process (what NCCL and bare `'cuda'` use). */
  setDevice: (index: number): void => {
    const n = native.cudaIsAvailable() ? native.cudaDeviceCount() : 0;
    if (!Number.isInteger(index) || index < 0 || index >= n)
      throw new RangeError(
        `cuda.setDevice(${index}): this machine has ${n} CUDA device(s)${n ? `; valid: 0..${n - 1}` : ''}`,
      );
    native.cudaSetDevice(index);
  },
  /** Waits for all work queued on the current device. */
  synchronize: (): void => {
    native.cudaSynchronize();
    deviceCopies.pending = false;
  },
  memory: (index = 0): CudaMemory => native.cudaMemory(index),
};

/** libtorch version and build configuration. */
export function buildInfo(): { torch: string; config: string; parallel: string; cxx11Abi: boolean; cuda: boolean } {
  return native.buildInfo();
}
export const version: string = native.buildInfo().torch;
