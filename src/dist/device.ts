// Which device a process of a run computes on: one GPU per process, as main_moco.py (args.gpu = the local rank).
import { cuda } from '../torch/index.js';

/**
 * This process's device for a run configured with `device` ('cpu', 'cuda' or 'cuda:N'). In a multi-process run
 * (`worldSize` > 1) every CUDA device string means `cuda:<localRank>`: each process owns the GPU of its local rank,
 * whatever index a resumed config recorded. A single process keeps the device it was given.
 */
export function processDevice(device: string, where: { localRank: number; worldSize: number } | null): string {
  if (!device.startsWith('cuda') || !where || where.worldSize <= 1) return device;
  return `cuda:${where.localRank}`;
}

/**
 * Makes `device` this process's current CUDA device (before an NCCL group is created, which binds to the current
 * device, and before any bare 'cuda' tensor). A no-op for the CPU. Throws, naming the flag, when the GPU is absent.
 */
export function useDevice(device: string): void {
  if (!device.startsWith('cuda')) return;
  const index = device === 'cuda' ? 0 : Number(device.slice('cuda:'.length));
  const n = cuda.isAvailable() ? cuda.deviceCount() : 0;
  if (!Number.isInteger(index) || index < 0 || index >= n) {
    throw new Error(`--device ${device}: ${n ? `this machine has ${n} CUDA device(s) (cuda:0..cuda:${n - 1}); a multi-process run needs one per local process` : 'CUDA is not available in this libtorch build or on this machine; use --device cpu'}`);
  }
  cuda.setDevice(index);
}
