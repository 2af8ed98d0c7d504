// A minimal pickle writer for plain Python data with numpy arrays: what Detectron2's `.pkl` weights are
// (`pickle.load(f, encoding="latin1")` on a dict of numpy arrays). Hand-written because no maintained npm package
// writes numpy arrays into pickles, and the opcodes needed are few. The arrays copy numpy's own `__reduce__`
// (`pickletools.dis(pickle.dumps(np.zeros(3, np.float32), protocol=3))`):
//   numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')  then BUILD with
//   (1, shape, numpy.dtype('f4', False, True) BUILD (3, '<', None, None, None, -1, -1, 0), False, raw bytes).
// Protocol 3 (Python 3.0+) rather than 2, so that the raw bytes are a BINBYTES opcode instead of protocol 2's
// `_codecs.encode(latin-1 text)`; `numpy.core.multiarray` is the module name both numpy 1.x and 2.x unpickle.
import type { DType } from '../torch/dtype.js';

/** A numpy array to pickle: little-endian row-major `data` of `dtype`, `shape` ([] for a 0-d array). */
export class NdArray {
  constructor(
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly data: Uint8Array,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.byteLength !== n * NUMPY_DTYPE[dtype].size) {
      throw new Error(`NdArray: ${data.byteLength} bytes for ${dtype} of shape [${shape.join(', ')}]`);
    }
  }
}

/** What {@link pickleDumps} writes: dict (plain object or Map with string keys), str, bool, int, None, ndarray. */
export type PickleValue =
  null | boolean | number | string | NdArray | Map<string, PickleValue> | { [key: string]: PickleValue };

// numpy's dtype code and item size per tensor dtype; bfloat16 has no numpy dtype.
const NUMPY_DTYPE: Record<DType, { code: string; size: number }> = {
  float32: { code: 'f4', size: 4 },
  float64: { code: 'f8', size: 8 },
  float16: { code: 'f2', size: 2 },
  bfloat16: { code: '', size: 2 },
  int64: { code: 'i8', size: 8 },
  int32: { code: 'i4', size: 4 },
  int16: { code: 'i2', size: 2 },
  int8: { code: 'i1', size: 1 },
  uint8: { code: 'u1', size: 1 },
  bool: { code: 'b1', size: 1 },
};

const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  MARK: 0x28,
  NONE: 0x4e,
  TRUE: 0x88,
  FALSE: 0x89,
  BININT1: 0x4b,
  BININT: 0x4a,
  BINUNICODE: 0x58,
  BINBYTES: 0x42,
  GLOBAL: 0x63,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  REDUCE: 0x52,
  BUILD: 0x62,
  EMPTY_DICT: 0x7d,
  SETITEMS: 0x75,
} as const;

/** `pickle.dumps(value, protocol=3)` for {@link PickleValue}s, without a memo (nothing is shared). */
export function pickleDumps(value: PickleValue): Buffer {
  const chunks: Buffer[] = [];
  const op = (...b: number[]): void => {
    chunks.push(Buffer.from(b));
  };
  const u32 = (code: number, n: number, body?: Uint8Array): void => {
    const h = Buffer.alloc(5);
    h[0] = code;
    h.writeUInt32LE(n, 1);
    chunks.push(h);
    if (body) chunks.push(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  };
  const int = (v: number): void => {
    if (!Number.isSafeInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new Error(`pickle: int ${v} out of range`);
    if (v >= 0 && v < 256) op(OP.BININT1, v);
    else {
      const b = Buffer.alloc(5);
      b[0] = OP.BININT;
      b.writeInt32LE(v, 1);
      chunks.push(b);
    }
  };
  const str = (s: string): void => {
    const b = Buffer.from(s, 'utf8');
    u32(OP.BINUNICODE, b.length, b);
  };
  const global = (module: string, name: string): void => {
    chunks.push(Buffer.from(`c${module}\n${name}\n`, 'utf8'));
  };
  const tuple = (items: (() => void)[]): void => {
    if (items.length === 0) {
      op(OP.EMPTY_TUPLE);
      return;
    }
    if (items.length <= 3) {
      for (const f of items) f();
      op(OP.TUPLE1 + items.length - 1);
      return;
    }
    op(OP.MARK);
    for (const f of items) f();
    op(OP.TUPLE);
  };
  const array = (a: NdArray): void => {
    const { code, size } = NUMPY_DTYPE[a.dtype];
    if (!code) throw new Error(`pickle: numpy has no ${a.dtype} dtype`);
    if (a.data.byteLength >= 2 ** 32) throw new Error('pickle: an array of 4 GiB or more needs protocol 4');
    global('numpy.core.multiarray', '_reconstruct');
    tuple([() => global('numpy', 'ndarray'), () => tuple([() => int(0)]), () => u32(OP.BINBYTES, 1, Buffer.from('b'))]);
    op(OP.REDUCE);
    tuple([
      () => int(1),
      () => tuple(a.shape.map((d) => () => int(d))),
      () => {
        global('numpy', 'dtype');
        tuple([() => str(code), () => op(OP.FALSE), () => op(OP.TRUE)]);
        op(OP.REDUCE);
        // (version, byte order, subdtypes, names, fields, itemsize, alignment, flags): a plain scalar type.
        tuple([
          () => int(3),
          () => str(size === 1 ? '|' : '<'),
          () => op(OP.NONE),
          () => op(OP.NONE),
          () => op(OP.NONE),
          () => int(-1),
          () => int(-1),
          () => int(0),
        ]);
        op(OP.BUILD);
      },
      () => op(OP.FALSE), // not Fortran order
      () => u32(OP.BINBYTES, a.data.byteLength, a.data),
    ]);
    op(OP.BUILD);
  };
  const dict = (entries: [string, PickleValue][]): void => {
    op(OP.EMPTY_DICT);
    // SETITEMS in batches of 1000, as Python writes them.
    for (let i = 0; i < entries.length; i += 1000) {
      op(OP.MARK);
      for (const [k, v] of entries.slice(i, i + 1000)) {
        str(k);
        any(v);
      }
      op(OP.SETITEMS);
    }
  };
  const any = (v: PickleValue): void => {
    if (v === null) op(OP.NONE);
    else if (v === true) op(OP.TRUE);
    else if (v === false) op(OP.FALSE);
    else if (typeof v === 'number') int(v);
    else if (typeof v === 'string') str(v);
    else if (v instanceof NdArray) array(v);
    else if (v instanceof Map) dict([...v.entries()]);
    else dict(Object.entries(v));
  };
  op(OP.PROTO, 3);
  any(value);
  op(OP.STOP);
  return Buffer.concat(chunks);
}
