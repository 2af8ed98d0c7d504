// Tensor constructors, named as in PyTorch.
import { native } from './native.js';
import { dtypeCode, dtypeOfTypedArray, type DType } from './dtype.js';
import { op, Tensor, type Device } from './tensor.js';

export interface CreateOpts {
  /** Element type; default float32 (int64 for integer-only constructors). */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: Device;
  requiresGrad?: boolean;
}

function kw(o: CreateOpts, fallback?: DType): Record<string, number | string | undefined> {
  const d = o.dtype ?? fallback;
  return { dtype: d === undefined ? undefined : dtypeCode(d), device: o.device };
}

function finish(t: Tensor, o: CreateOpts): Tensor {
  if (o.requiresGrad) t.requiresGrad_(true);
  return t;
}

type Nested = number | boolean | Nested[];

function flattenNested(v: Nested, shape: number[], depth: number, out: number[]): void {
  if (Array.isArray(v)) {
    if (shape.length === depth) shape.push(v.length);
    else if (shape[depth] !== v.length)
      throw new RangeError(
        `tensor: ragged nested array (length ${v.length} where ${shape[depth]} expected at depth ${depth})`,
      );
    for (const x of v) flattenNested(x, shape, depth + 1, out);
  } else {
    if (shape.length !== depth)
      throw new RangeError('tensor: ragged nested array (a number where an array was expected)');
    out.push(typeof v === 'boolean' ? Number(v) : v);
  }
}

/**
 * A tensor from data: a typed array or Buffer with `shape` (copied), or nested JS arrays (float32 by default).
 */
export function tensor(data: ArrayBufferView | Nested, opts: CreateOpts & { shape?: number[] } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const dt = opts.dtype ?? dtypeOfTypedArray(data);
    const n =
      data.byteLength / (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT! || data.byteLength;
    t = new Tensor(native.fromBuffer(data, opts.shape ?? [n], dtypeCode(dt)));
  } else {
    const shape: number[] = [];
    const flat: number[] = [];
    flattenNested(data, shape, 0, flat);
    const dt = opts.dtype ?? 'float32';
    const buf = makeTyped(dt, flat);
    t = new Tensor(native.fromBuffer(buf, opts.shape ?? shape, dtypeCode(dt)));
  }
  if (opts.device && opts.device !== 'cpu') {
    const moved = t.to(opts.device);
    t.dispose();
    t = moved;
  }
  return finish(t, opts);
}

function makeTyped(dt: DType, v: number[]): ArrayBufferView {
  switch (dt) {
    case 'float32':
      return Float32Array.from(v);
    case 'float64':
      return Float64Array.from(v);
    case 'int64':
      return BigInt64Array.from(v, (x) => BigInt(Math.trunc(x)));
    case 'int32':
      return Int32Array.from(v);
    case 'int16':
      return Int16Array.from(v);
    case 'int8':
      return Int8Array.from(v);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(v, (x) => (dt === 'bool' ? Number(x !== 0) : x));
    default:
      throw new Error(`tensor: build ${dt} tensors from float32 data with .to('${dt}')`);
  }
}

export function zeros(shape: number[], o: CreateOpts = {}): Tensor {
  return finish(op('aten::zeros', '', [shape], kw(o)), o);
}
export function ones(shape: number[], o: CreateOpts = {}): Tensor {
  return finish(op('aten::ones', '', [shape], kw(o)), o);
}
export function empty(shape: number[], o: CreateOpts = {}): Tensor {
  return finish(op('aten::empty', 'memory_format', [shape], kw(o)), o);
}
export function full(shape: number[], value: number, o: CreateOpts = {}): Tensor {
  return finish(op('aten::full', '', [shape, value], kw(o, 'float32')), o);
}
export function zerosLike(t: Tensor, o: CreateOpts = {}): Tensor {
  return finish(op('aten::zeros_like', '', [t], kw(o)), o);
}
export function onesLike(t: Tensor, o: CreateOpts = {}): Tensor {
  return finish(op('aten::ones_like', '', [t], kw(o)), o);
}
/** Values from `start` to `end` (exclusive) by `step`; int64 when all three are integers, as torch.arange. */
export function arange(start: number, end?: number, step = 1, o: CreateOpts = {}): Tensor {
  if (end === undefined) {
    end = start;
    start = 0;
  }
  return finish(op('aten::arange', 'start_step', [start, end, step], kw(o)), o);
}
export function linspace(start: number, end: number, steps: number, o: CreateOpts = {}): Tensor {
  return finish(op('aten::linspace', '', [start, end, steps], kw(o)), o);
}
export function eye(n: number, m?: number, o: CreateOpts = {}): Tensor {
  return finish(m === undefined ? op('aten::eye', '', [n], kw(o)) : op('aten::eye', 'm', [n, m], kw(o)), o);
}
/** Standard normal samples from the default generator (seed with {@link manualSeed}). */
export function randn(shape: number[], o: CreateOpts = {}): Tensor {
  return finish(op('aten::randn', '', [shape], kw(o)), o);
}
/** Uniform samples in [0, 1). */
export function rand(shape: number[], o: CreateOpts = {}): Tensor {
  return finish(op('aten::rand', '', [shape], kw(o)), o);
}
/** Integers in [low, high). */
export function randint(low: number, high: number, shape: number[], o: CreateOpts = {}): Tensor {
  return finish(op('aten::randint', 'low', [low, high, shape], kw(o, 'int64')), o);
}
/** A random permutation of 0..n−1 (int64). */
export function randperm(n: number, o: CreateOpts = {}): Tensor {
  return finish(op('aten::randperm', '', [n], kw(o, 'int64')), o);
}
