// The TypeScript face of libtorch.
export {
  Tensor,
  callOp,
  MemoryFormat,
  isDType,
  type Scalar,
  type TensorOrScalar,
  type Device,
  type ReduceOpts,
  type OpArg,
} from './tensor.js';
export { type DType, isFloating, elementSize } from './dtype.js';
export * from './creation.js';
export * from './ops.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled } from './autograd.js';
export { tidy, keep, dispose, memory, createdBytes, type Disposable } from './scope.js';
export {
  manualSeed,
  getRngState,
  setRngState,
  getGeneratorState,
  setGeneratorState,
  setNumThreads,
  getNumThreads,
  defaultThreads,
  cuda,
  buildInfo,
  version,
  type CudaMemory,
} from './runtime.js';
export * as F from './functional.js';
export { photometricInto, PhotometricOp, cropResizeInto, type PixelBox } from './image.js';
export { autocast, cpuBf16Features, type AutocastDType } from './autocast.js';
