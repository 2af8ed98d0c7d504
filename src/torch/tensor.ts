// The typed Tensor: a wrapper of one native libtorch tensor, with PyTorch's method names in camelCase.
import { native, type NativeArg, type NativeResult, type NativeTensor } from './native.js';
import { dtypeCode, dtypeName, elementSize, typedArrayFor, type DType, type TypedArrayOf } from './dtype.js';
import { track, type Disposable } from './scope.js';
import { deviceCopies, settleDeviceCopies } from './device-copies.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;
/** Anything an operator accepts as an argument. */
export type OpArg = Tensor | number | bigint | boolean | string | null | undefined | OpArg[];

/** `'cpu'`, `'cuda'`, `'cuda:1'`. */
export type Device = string;

export const MemoryFormat = { contiguous: 0, preserve: 1, channelsLast: 2 } as const;

function toNative(a: OpArg): NativeArg {
  if (a instanceof Tensor) return a.native;
  if (Array.isArray(a)) return a.map(toNative);
  return a;
}

export function wrapResult(r: NativeResult): unknown {
  if (r instanceof native.Tensor) return new Tensor(r as NativeTensor);
  if (Array.isArray(r)) return r.map(wrapResult);
  return r;
}

/**
 * Calls an ATen operator by schema name, e.g. `callOp('aten::conv2d', '', [x, w])`. Arguments left out take
 * the schema's defaults; `kwargs` names keyword arguments. Errors carry libtorch's message and the op's name.
 */
export function callOp(name: string, overload: string, args: OpArg[], kwargs?: Record<string, OpArg>): unknown {
  let nk: Record<string, NativeArg> | undefined;
  if (kwargs) {
    nk = {};
    for (const [k, v] of Object.entries(kwargs)) if (v !== undefined) nk[k] = toNative(v);
  }
  return wrapResult(native.call(name, overload, args.map(toNative), nk));
}

/** callOp for operators that return one tensor. */
export function op(name: string, overload: string, args: OpArg[], kwargs?: Record<string, OpArg>): Tensor {
  return callOp(name, overload, args, kwargs) as Tensor;
}

/** callOp for operators that return several tensors. */
export function ops(name: string, overload: string, args: OpArg[], kwargs?: Record<string, OpArg>): Tensor[] {
  return callOp(name, overload, args, kwargs) as Tensor[];
}

/** Binary ops have a Tensor and a Scalar overload; pick by the argument. */
function bin(name: string, self: Tensor, other: TensorOrScalar, extra: OpArg[] = []): Tensor {
  return other instanceof Tensor
    ? op(name, 'Tensor', [self, other, ...extra])
    : op(name, 'Scalar', [self, other, ...extra]);
}

export interface ReduceOpts {
  /** Dimension(s) to reduce; all when omitted. */
  dim?: number | number[];
  keepdim?: boolean;
}

/**
 * A libtorch tensor. Native memory is freed by {@link Tensor.dispose} or by the {@link tidy} scope that
 * created it; the garbage collector is only a safety net.
 */
export class Tensor implements Disposable {
  /** @internal */
  readonly native: NativeTensor;

  constructor(n: NativeTensor) {
    this.native = n;
    track(this);
  }

  // ---------------------------------------------------------------- metadata
  get shape(): number[] {
    return this.native.shape();
  }
  get dtype(): DType {
    return dtypeName(this.native.dtype());
  }
  get device(): Device {
    return this.native.device();
  }
  get ndim(): number {
    return this.native.dim();
  }
  dim(): number {
    return this.native.dim();
  }
  numel(): number {
    return this.native.numel();
  }
  size(d?: number): number | number[] {
    const s = this.shape;
    if (d === undefined) return s;
    const i = d < 0 ? d + s.length : d;
    if (i < 0 || i >= s.length) throw new RangeError(`size(${d}): dimension out of range for a ${s.length}-d tensor`);
    return s[i]!;
  }
  stride(): number[] {
    return this.native.strides();
  }
  get requiresGrad(): boolean {
    return this.native.requiresGrad();
  }
  get isLeaf(): boolean {
    return this.native.isLeaf();
  }
  get gradFn(): string | null {
    return this.native.gradFn();
  }
  get isDisposed(): boolean {
    return this.native.isDisposed();
  }
  isContiguous(memoryFormat: 'contiguous' | 'channelsLast' = 'contiguous'): boolean {
    return this.native.isContiguous(memoryFormat === 'channelsLast');
  }
  /** Bytes of this tensor's elements. */
  get nbytes(): number {
    return this.numel() * elementSize(this.dtype);
  }

  /** Frees the native memory now (views of the same storage keep theirs alive). Idempotent. */
  dispose(): void {
    this.native.dispose();
  }

  // ---------------------------------------------------------------- data out
  /** A copy of the elements, row-major, in the dtype's typed array (int64 → BigInt64Array). */
  data(): TypedArrayOf {
    settleDeviceCopies();
    return typedArrayFor(this.dtype, native.toBuffer(this.native));
  }
  /** The elements as JS numbers, row-major (int64 converted, precision beyond 2^53 lost). */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  /** The value of a one-element tensor. */
  item(): number {
    settleDeviceCopies();
    const v = callOp('aten::item', '', [this]);
    return typeof v === 'boolean' ? Number(v) : (v as number);
  }
  /** Overwrites a contiguous CPU tensor's elements from a typed array of the same byte length. */
  copyFromArray(a: ArrayBufferView): this {
    settleDeviceCopies(); // a queued copy may still read this memory
    native.copyInto(this.native, a);
    return this;
  }
  /** Copies a contiguous CPU tensor's elements into a typed array of the same byte length (no allocation). */
  copyToArray(a: ArrayBufferView): ArrayBufferView {
    settleDeviceCopies(); // a queued copy may still write this memory
    native.copyOut(this.native, a);
    return a;
  }
  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---------------------------------------------------------------- conversion
  /** Converts to a dtype or moves to a device (`'cuda'` needs a CUDA build of libtorch). */
  to(target: DType | Device, opts: { copy?: boolean; nonBlocking?: boolean } = {}): Tensor {
    if (isDType(target))
      return op('aten::to', 'dtype', [this, dtypeCode(target), opts.nonBlocking ?? false, opts.copy ?? false]);
    if (target.startsWith('cuda') && !native.cudaIsAvailable()) {
      throw new Error(
        `to('${target}'): CUDA is not available in this libtorch build (${native.buildInfo().torch}, CPU only)`,
      );
    }
    const out = op('aten::to', 'device', [
      this,
      target,
      this.native.dtype(),
      opts.nonBlocking ?? false,
      opts.copy ?? false,
    ]);
    // A non-blocking copy to the host returns before the bytes arrive (see device-copies.ts).
    if (opts.nonBlocking && target === 'cpu' && this.device.startsWith('cuda')) deviceCopies.pending = true;
    return out;
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  int(): Tensor {
    return this.to('int32');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  cpu(): Tensor {
    return this.to('cpu');
  }
  clone(): Tensor {
    return op('aten::clone', '', [this]);
  }
  detach(): Tensor {
    return op('aten::detach', '', [this]);
  }
  contiguous(memoryFormat: 'contiguous' | 'channelsLast' = 'contiguous'): Tensor {
    return op('aten::contiguous', '', [this, MemoryFormat[memoryFormat]]);
  }

  // ---------------------------------------------------------------- autograd
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.native, on);
    return this;
  }
  /** The accumulated gradient (a new wrapper each call; dispose it when done), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.native);
    return g ? new Tensor(g) : null;
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.native, g ? g.native : null);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    native.backward(
      this.native,
      gradient ? gradient.native : null,
      opts.retainGraph ?? false,
      opts.createGraph ?? false,
    );
  }

  // ---------------------------------------------------------------- views and indexing
  reshape(...shape: number[]): Tensor {
    return op('aten::reshape', '', [this, shape]);
  }
  view(...shape: number[]): Tensor {
    return op('aten::view', '', [this, shape]);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return op('aten::flatten', 'using_ints', [this, startDim, endDim]);
  }
  permute(...dims: number[]): Tensor {
    return op('aten::permute', '', [this, dims]);
  }
  transpose(d0: number, d1: number): Tensor {
    return op('aten::transpose', 'int', [this, d0, d1]);
  }
  t(): Tensor {
    return op('aten::t', '', [this]);
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return op('aten::narrow', '', [this, dim, start, length]);
  }
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return op('aten::slice', 'Tensor', [this, dim, start ?? null, end ?? null, step]);
  }
  select(dim: number, index: number): Tensor {
    return op('aten::select', 'int', [this, dim, index]);
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return op('aten::index_select', '', [this, dim, index]);
  }
  gather(dim: number, index: Tensor): Tensor {
    return op('aten::gather', '', [this, dim, index]);
  }
  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    return src instanceof Tensor
      ? op('aten::scatter', 'src', [this, dim, index, src])
      : op('aten::scatter', 'value', [this, dim, index, src]);
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return op('aten::scatter_add', '', [this, dim, index, src]);
  }
  scatterAdd_(dim: number, index: Tensor, src: Tensor): this {
    op('aten::scatter_add_', '', [this, dim, index, src]).dispose();
    return this;
  }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return op('aten::masked_fill', value instanceof Tensor ? 'Tensor' : 'Scalar', [this, mask, value]);
  }
  /** `x[index]` with a tensor of indices or a bool mask along dim 0. */
  index(indices: (Tensor | null)[]): Tensor {
    return op('aten::index', 'Tensor', [this, indices]);
  }
  indexPut_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this {
    op('aten::index_put_', '', [this, indices, values, accumulate]).dispose();
    return this;
  }
  expand(...shape: number[]): Tensor {
    return op('aten::expand', '', [this, shape]);
  }
  expandAs(other: Tensor): Tensor {
    return op('aten::expand_as', '', [this, other]);
  }
  repeat(...repeats: number[]): Tensor {
    return op('aten::repeat', '', [this, repeats]);
  }
  flip(...dims: number[]): Tensor {
    return op('aten::flip', '', [this, dims]);
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? op('aten::squeeze', '', [this]) : op('aten::squeeze', 'dim', [this, dim]);
  }
  unsqueeze(dim: number): Tensor {
    return op('aten::unsqueeze', '', [this, dim]);
  }
  split(splitSize: number | number[], dim = 0): Tensor[] {
    return Array.isArray(splitSize)
      ? ops('aten::split_with_sizes', '', [this, splitSize, dim])
      : ops('aten::split', 'Tensor', [this, splitSize, dim]);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return ops('aten::chunk', '', [this, chunks, dim]);
  }
  unbind(dim = 0): Tensor[] {
    return ops('aten::unbind', 'int', [this, dim]);
  }

  // ---------------------------------------------------------------- elementwise math
  add(other: TensorOrScalar, alpha: number = 1): Tensor {
    return bin('aten::add', this, other, [alpha]);
  }
  sub(other: TensorOrScalar, alpha: number = 1): Tensor {
    return bin('aten::sub', this, other, [alpha]);
  }
  mul(other: TensorOrScalar): Tensor {
    return bin('aten::mul', this, other);
  }
  div(other: TensorOrScalar): Tensor {
    return bin('aten::div', this, other);
  }
  remainder(other: TensorOrScalar): Tensor {
    return bin('aten::remainder', this, other);
  }
  pow(exponent: TensorOrScalar): Tensor {
    return exponent instanceof Tensor
      ? op('aten::pow', 'Tensor_Tensor', [this, exponent])
      : op('aten::pow', 'Tensor_Scalar', [this, exponent]);
  }
  neg(): Tensor {
    return op('aten::neg', '', [this]);
  }
  abs(): Tensor {
    return op('aten::abs', '', [this]);
  }
  exp(): Tensor {
    return op('aten::exp', '', [this]);
  }
  log(): Tensor {
    return op('aten::log', '', [this]);
  }
  sqrt(): Tensor {
    return op('aten::sqrt', '', [this]);
  }
  rsqrt(): Tensor {
    return op('aten::rsqrt', '', [this]);
  }
  sin(): Tensor {
    return op('aten::sin', '', [this]);
  }
  cos(): Tensor {
    return op('aten::cos', '', [this]);
  }
  tanh(): Tensor {
    return op('aten::tanh', '', [this]);
  }
  sigmoid(): Tensor {
    return op('aten::sigmoid', '', [this]);
  }
  relu(): Tensor {
    return op('aten::relu', '', [this]);
  }
  floor(): Tensor {
    return op('aten::floor', '', [this]);
  }
  ceil(): Tensor {
    return op('aten::ceil', '', [this]);
  }
  round(): Tensor {
    return op('aten::round', '', [this]);
  }
  sign(): Tensor {
    return op('aten::sign', '', [this]);
  }
  reciprocal(): Tensor {
    return op('aten::reciprocal', '', [this]);
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return op('aten::clamp', '', [this, min ?? null, max ?? null]);
  }
  clampMin(min: number): Tensor {
    return op('aten::clamp_min', '', [this, min]);
  }
  clampMax(max: number): Tensor {
    return op('aten::clamp_max', '', [this, max]);
  }
  lerp(end: Tensor, weight: TensorOrScalar): Tensor {
    return op('aten::lerp', weight instanceof Tensor ? 'Tensor' : 'Scalar', [this, end, weight]);
  }

  eq(other: TensorOrScalar): Tensor {
    return bin('aten::eq', this, other);
  }
  ne(other: TensorOrScalar): Tensor {
    return bin('aten::ne', this, other);
  }
  lt(other: TensorOrScalar): Tensor {
    return bin('aten::lt', this, other);
  }
  le(other: TensorOrScalar): Tensor {
    return bin('aten::le', this, other);
  }
  gt(other: TensorOrScalar): Tensor {
    return bin('aten::gt', this, other);
  }
  ge(other: TensorOrScalar): Tensor {
    return bin('aten::ge', this, other);
  }
  logicalNot(): Tensor {
    return op('aten::logical_not', '', [this]);
  }
  logicalAnd(other: Tensor): Tensor {
    return op('aten::logical_and', '', [this, other]);
  }
  logicalOr(other: Tensor): Tensor {
    return op('aten::logical_or', '', [this, other]);
  }
  isnan(): Tensor {
    return op('aten::isnan', '', [this]);
  }
  isfinite(): Tensor {
    return op('aten::isfinite', '', [this]);
  }
  allclose(other: Tensor, rtol = 1e-5, atol = 1e-8): boolean {
    return callOp('aten::allclose', '', [this, other, rtol, atol]) as boolean;
  }

  // ---------------------------------------------------------------- reductions
  sum(opts: ReduceOpts = {}): Tensor {
    return opts.dim === undefined
      ? op('aten::sum', '', [this])
      : op('aten::sum', 'dim_IntList', [this, dims(opts.dim), opts.keepdim ?? false]);
  }
  mean(opts: ReduceOpts = {}): Tensor {
    return opts.dim === undefined
      ? op('aten::mean', '', [this])
      : op('aten::mean', 'dim', [this, dims(opts.dim), opts.keepdim ?? false]);
  }
  /** Variance; `unbiased` (default true) divides by n−1 as torch.var. */
  var(opts: ReduceOpts & { unbiased?: boolean } = {}): Tensor {
    return op('aten::var', 'dim', [
      this,
      opts.dim === undefined ? null : dims(opts.dim),
      opts.unbiased ?? true,
      opts.keepdim ?? false,
    ]);
  }
  std(opts: ReduceOpts & { unbiased?: boolean } = {}): Tensor {
    return op('aten::std', 'dim', [
      this,
      opts.dim === undefined ? null : dims(opts.dim),
      opts.unbiased ?? true,
      opts.keepdim ?? false,
    ]);
  }
  /** Maximum of all elements. */
  max(): Tensor {
    return op('aten::max', '', [this]);
  }
  min(): Tensor {
    return op('aten::min', '', [this]);
  }
  /** Maximum along a dimension: values and their indices. */
  maxDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = ops('aten::max', 'dim', [this, dim, keepdim]);
    return { values: values!, indices: indices! };
  }
  minDim(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = ops('aten::min', 'dim', [this, dim, keepdim]);
    return { values: values!, indices: indices! };
  }
  /** Elementwise maximum with another tensor. */
  maximum(other: Tensor): Tensor {
    return op('aten::maximum', '', [this, other]);
  }
  minimum(other: Tensor): Tensor {
    return op('aten::minimum', '', [this, other]);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return op('aten::argmax', '', [this, dim ?? null, keepdim]);
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return op('aten::argmin', '', [this, dim ?? null, keepdim]);
  }
  /** p-norm (default 2) over all elements or `dim`. */
  norm(p = 2, opts: ReduceOpts = {}): Tensor {
    return opts.dim === undefined
      ? op('aten::norm', 'Scalar', [this, p])
      : op('aten::norm', 'ScalarOpt_dim', [this, p, dims(opts.dim), opts.keepdim ?? false]);
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return op('aten::logsumexp', '', [this, dims(dim), keepdim]);
  }
  cumsum(dim: number): Tensor {
    return op('aten::cumsum', '', [this, dim]);
  }
  any(): Tensor {
    return op('aten::any', '', [this]);
  }
  all(): Tensor {
    return op('aten::all', '', [this]);
  }
  softmax(dim: number): Tensor {
    return op('aten::softmax', 'int', [this, dim]);
  }
  logSoftmax(dim: number): Tensor {
    return op('aten::log_softmax', 'int', [this, dim]);
  }

  // ---------------------------------------------------------------- linear algebra, ordering
  matmul(other: Tensor): Tensor {
    return op('aten::matmul', '', [this, other]);
  }
  mm(other: Tensor): Tensor {
    return op('aten::mm', '', [this, other]);
  }
  bmm(other: Tensor): Tensor {
    return op('aten::bmm', '', [this, other]);
  }
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = ops('aten::topk', '', [this, k, dim, largest, sorted]);
    return { values: values!, indices: indices! };
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = ops('aten::sort', '', [this, dim, descending]);
    return { values: values!, indices: indices! };
  }
  argsort(dim = -1, descending = false): Tensor {
    return op('aten::argsort', '', [this, dim, descending]);
  }

  // ---------------------------------------------------------------- in place (optimizers, buffers)
  add_(other: TensorOrScalar, alpha: number = 1): this {
    bin('aten::add_', this, other, [alpha]).dispose();
    return this;
  }
  sub_(other: TensorOrScalar, alpha: number = 1): this {
    bin('aten::sub_', this, other, [alpha]).dispose();
    return this;
  }
  mul_(other: TensorOrScalar): this {
    bin('aten::mul_', this, other).dispose();
    return this;
  }
  div_(other: TensorOrScalar): this {
    bin('aten::div_', this, other).dispose();
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    op('aten::addcmul_', '', [this, t1, t2, value]).dispose();
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    op('aten::addcdiv_', '', [this, t1, t2, value]).dispose();
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    op('aten::lerp_', 'Scalar', [this, end, weight]).dispose();
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    op('aten::clamp_', '', [this, min ?? null, max ?? null]).dispose();
    return this;
  }
  copy_(src: Tensor): this {
    op('aten::copy_', '', [this, src]).dispose();
    return this;
  }
  zero_(): this {
    op('aten::zero_', '', [this]).dispose();
    return this;
  }
  fill_(value: number): this {
    op('aten::fill_', 'Scalar', [this, value]).dispose();
    return this;
  }
  relu_(): this {
    op('aten::relu_', '', [this]).dispose();
    return this;
  }
  normal_(mean = 0, std = 1): this {
    op('aten::normal_', '', [this, mean, std]).dispose();
    return this;
  }
  uniform_(from = 0, to = 1): this {
    op('aten::uniform_', '', [this, from, to]).dispose();
    return this;
  }
  maskedFill_(mask: Tensor, value: number): this {
    op('aten::masked_fill_', 'Scalar', [this, mask, value]).dispose();
    return this;
  }
}

function dims(d: number | number[]): number[] {
  return Array.isArray(d) ? d : [d];
}

const DTYPES = new Set([
  'uint8',
  'int8',
  'int16',
  'int32',
  'int64',
  'float16',
  'float32',
  'float64',
  'bool',
  'bfloat16',
]);
export function isDType(s: string): s is DType {
  return DTYPES.has(s);
}
