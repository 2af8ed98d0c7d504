// Loads the compiled addon and describes its surface. Only src/torch/ imports this file.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { findBuiltAddon } from './addon-file.js';

/** A libtorch tensor as the addon exposes it; wrapped by {@link Tensor} everywhere else. */
export interface NativeTensor {
  shape(): number[];
  strides(): number[];
  dtype(): number;
  device(): string;
  numel(): number;
  dim(): number;
  requiresGrad(): boolean;
  isLeaf(): boolean;
  gradFn(): string | null;
  isContiguous(channelsLast?: boolean): boolean;
  isDisposed(): boolean;
  dispose(): void;
  dataPtr(): bigint;
}

export type NativeArg = NativeTensor | number | bigint | boolean | string | null | undefined | NativeArg[];
export type NativeResult = NativeTensor | number | boolean | string | null | NativeResult[];

export interface NativeBinding {
  Tensor: new () => NativeTensor;
  call(name: string, overload: string, args: NativeArg[], kwargs?: Record<string, NativeArg>): NativeResult;
  schema(name: string, overload: string): string;
  fromBuffer(data: ArrayBufferView, shape: number[], dtype: number): NativeTensor;
  toBuffer(t: NativeTensor): ArrayBuffer;
  copyInto(t: NativeTensor, data: ArrayBufferView): void;
  copyOut(t: NativeTensor, data: ArrayBufferView): void;
  backward(t: NativeTensor, grad: NativeTensor | null, retainGraph: boolean, createGraph: boolean): void;
  grad(t: NativeTensor): NativeTensor | null;
  setGrad(t: NativeTensor, g: NativeTensor | null): void;
  setRequiresGrad(t: NativeTensor, on: boolean): void;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  manualSeed(seed: number | bigint): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  memory(): { tensors: number; bytes: number; cudaBytes: number };
  cudaIsAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSetDevice(index: number): void;
  cudaSynchronize(): void;
  cudaMemory(index: number): { allocated: number; reserved: number; peakAllocated: number; peakReserved: number };
  getGeneratorState(device: string): NativeTensor;
  setGeneratorState(device: string, state: NativeTensor): void;
  autocastEnter(deviceType: 'cpu' | 'cuda', enabled: boolean, dtype: number): { enabled: boolean; dtype: number };
  autocastExit(deviceType: 'cpu' | 'cuda', enabled: boolean, dtype: number): void;
  buildInfo(): { torch: string; config: string; parallel: string; cxx11Abi: boolean; cuda: boolean };
  cropResize(
    src: Uint8Array,
    width: number,
    height: number,
    boxes: Int32Array,
    flips: Uint8Array,
    size: number,
    dst: Uint8Array,
    offsets: number[],
  ): Promise<void>;
  photometric(
    input: NativeTensor,
    scale: number,
    program: Float32Array,
    steps: number,
    mean: number[],
    std: number[],
    out: NativeTensor,
  ): void;
}

function findAddon(): string {
  // Another build of the addon (e.g. against a second libtorch, for benchmarks comparing the two).
  const override = process.env.MOCO_ADDON;
  if (override) {
    if (!existsSync(override))
      throw new Error(
        `moco-ts: MOCO_ADDON=${override} does not exist; point it at a built moco_native.node or unset it`,
      );
    return override;
  }
  const built = findBuiltAddon('moco_native.node');
  if (built) return built;
  throw new Error(
    'moco-ts: the native addon build/Release/moco_native.node is missing; run `npm run build:native` (needs libtorch, see README)',
  );
}

const require = createRequire(import.meta.url);
export const native: NativeBinding = require(findAddon()) as NativeBinding;
