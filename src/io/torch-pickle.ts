// Reads PyTorch checkpoint files (torch.save) without Python: the zip format (torch ≥ 1.6: `<archive>/data.pkl`
// plus one `<archive>/data/<key>` record per storage) and the legacy format (magic number, protocol and
// sys-info pickles, the object pickle, the storage-key list, then each storage as an 8-byte element count and
// its raw bytes). Pickled classes pass a whitelist; dangerous names are refused before anything is built.
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { Tensor, tensor, type DType } from '../torch/index.js';
import { MemoryFormat, op } from '../torch/tensor.js';
import { elementSize } from '../torch/dtype.js';
import { PickleError, PickleGlobal, PickleObject, unpickle, type PickleCallable, type PyValue } from './pickle.js';

export { PickleError, PickleGlobal, PickleObject, type PyDict, type PyList, type PyValue } from './pickle.js';

export interface TorchLoadOptions {
  /**
   * Refuse every class outside the whitelist (default false: unknown classes become inert
   * {@link PickleObject} placeholders; modules that can run code — os, subprocess, builtins.eval… — are
   * refused either way).
   */
  strict?: boolean;
}

/** The storage classes torch pickles name (`torch.FloatStorage`…), by element type. */
export const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  float32: 'float32',
  float: 'float32',
  float64: 'float64',
  double: 'float64',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

// Modules whose names in a pickle can only mean "run code": refused even when not strict.
const DENIED_MODULES = new Set([
  'os',
  'posix',
  'nt',
  'posixpath',
  'ntpath',
  'subprocess',
  'sys',
  'shutil',
  'socket',
  'importlib',
  'runpy',
  'pickle',
  '_pickle',
  'marshal',
  'ctypes',
  'webbrowser',
  'pty',
  'platform',
  'multiprocessing',
  'asyncio',
  'code',
  'codeop',
  'timeit',
  'pdb',
  'bdb',
  'trace',
  'signal',
  'tempfile',
  'pathlib',
  'io',
  '_io',
  'operator',
  'functools',
  'types',
  'inspect',
  'commands',
  'popen2',
  'urllib',
  'http',
  'ftplib',
  'smtplib',
  'telnetlib',
  'builtins',
  '__builtin__',
  'torch.hub',
  'torch.jit',
  'torch.package',
  'torch.ops',
  'torch._ops',
  'numpy.testing',
  'numpy.f2py',
  'numpy.distutils',
]);
// Names that mean code execution or attribute access whatever module claims to hold them.
const DENIED_NAMES = new Set([
  'eval',
  'exec',
  'execfile',
  'compile',
  'getattr',
  'setattr',
  'delattr',
  'open',
  'input',
  'breakpoint',
  'globals',
  'locals',
  'vars',
  'system',
  'popen',
  'spawn',
  'call',
  'check_call',
  'check_output',
  'run',
  'load',
  'loads',
]);
// The few builtins that are plain data constructors.
const SAFE_BUILTINS = new Set(['set', 'frozenset', 'bytearray', 'bytes', 'object', 'slice', 'complex', 'range']);

/** A storage named by a persistent id; its bytes arrive from the zip record or the legacy tail. */
class StorageRef {
  bytes: Uint8Array | null = null;
  tensor: Tensor | null = null;
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
  ) {}
}

/** A tensor to build once all storages are read (legacy files hold the bytes after the pickle). */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
    readonly storageView?: { offset: number; numel: number },
  ) {}
}

class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: DType,
  ) {}
}

function fn(f: (args: PyValue[]) => PyValue): PickleCallable {
  return { call: f };
}

function asInts(v: PyValue, what: string): number[] {
  if (!Array.isArray(v)) throw new PickleError(`${what} is not a tuple`);
  return v.map((x) => {
    if (typeof x !== 'number') throw new PickleError(`${what} holds a non-integer`);
    return x;
  });
}

function rebuildTensor(args: PyValue[]): PyValue {
  const [storage, offset, size, stride] = args;
  if (storage instanceof TensorRef || !(storage instanceof StorageRef)) {
    throw new PickleError('_rebuild_tensor: first argument is not a storage');
  }
  if (typeof offset !== 'number') throw new PickleError('_rebuild_tensor: storage offset is not an integer');
  return new TensorRef(storage, offset, asInts(size ?? [], 'tensor size'), asInts(stride ?? [], 'tensor stride'));
}

/**
 * The whitelist of globals a checkpoint may name, and what calling each builds; a resolver for
 * {@link unpickle}. Names that can run code are refused; other unknown names become placeholders, or are
 * refused when `strict`.
 */
export function checkpointGlobals(
  strict: boolean,
): (module: string, name: string) => PyValue | PickleCallable | undefined {
  return (module, name) => {
    const full = `${module}.${name}`;
    const top = module.split('.')[0]!;
    if (module === 'collections' && name === 'OrderedDict') return fn(() => new Map());
    if (module === 'torch._utils') {
      if (name === '_rebuild_tensor_v2' || name === '_rebuild_tensor') return fn(rebuildTensor);
      if (name === '_rebuild_parameter' || name === '_rebuild_parameter_with_state') return fn((a) => a[0] ?? null);
    }
    if (module === 'torch._tensor' && name === '_rebuild_from_type_v2') {
      // (func, type, args, state): rebuild with func, drop the subclass and its Python state.
      return fn((a) => {
        const f = a[0];
        const inner = a[2];
        if (f && typeof f === 'object' && 'call' in f && Array.isArray(inner)) return (f as PickleCallable).call(inner);
        throw new PickleError('_rebuild_from_type_v2 with an unsupported rebuild function');
      });
    }
    if (module === 'torch' || module === 'torch.storage') {
      const dt = STORAGE_DTYPES[name] ?? (name === 'TypedStorage' || name === '_TypedStorage' ? 'uint8' : undefined);
      if (dt) return new StorageType(name, dt);
      if (module === 'torch' && TORCH_DTYPES[name]) return TORCH_DTYPES[name];
      if (module === 'torch' && name === 'device') return fn((a) => a.map(String).join(':'));
      if (module === 'torch' && name === 'Size') return fn((a) => a[0] ?? []);
    }
    if (module === 'torch.nn.parameter' && name === 'Parameter') return fn((a) => a[0] ?? null);
    if (module === 'argparse' && name === 'Namespace') return fn(() => new Map());
    if ((module === '_codecs' || module === 'codecs') && name === 'encode') {
      // Protocol 2 pickles bytes as _codecs.encode(str, 'latin1').
      return fn((a) => Uint8Array.from(String(a[0] ?? ''), (c) => c.charCodeAt(0) & 0xff));
    }
    if ((module === 'builtins' || module === '__builtin__') && SAFE_BUILTINS.has(name)) {
      if (name === 'set' || name === 'frozenset') return fn((a) => new Set(Array.isArray(a[0]) ? a[0] : []));
      if (name === 'bytearray' || name === 'bytes')
        return fn((a) => (a[0] instanceof Uint8Array ? a[0] : new Uint8Array()));
      if (!strict) return undefined;
    }
    if (module === 'copyreg' || module === 'copy_reg') {
      // _reconstructor(cls, base, state) is how protocol < 2 pickles an instance: becomes that class's placeholder.
      if (name === '_reconstructor') {
        return fn((a) => {
          const cls = a[0];
          if (cls instanceof PickleGlobal) return new PickleObject(cls.module, cls.name, []);
          if (cls && typeof cls === 'object' && 'call' in cls) return (cls as PickleCallable).call([]);
          throw new PickleError('copyreg._reconstructor of an unsupported class');
        });
      }
    }
    if (module === 'numpy.core.multiarray' || module === 'numpy._core.multiarray' || module === 'numpy') {
      if (name === 'scalar') return fn((a) => numpyScalar(a[0] ?? null, a[1] ?? null));
      if (name === 'dtype') return fn((a) => new NumpyDType(String(a[0])));
    }
    if (DENIED_MODULES.has(module) || DENIED_MODULES.has(top) || DENIED_NAMES.has(name) || name.startsWith('__')) {
      throw new PickleError(
        `refused to load '${full}': pickles can run code, and this one names a function that would (only data classes are allowed)`,
      );
    }
    if (strict)
      throw new PickleError(`refused to load '${full}': not on the whitelist of checkpoint classes (strict mode)`);
    return undefined;
  };
}

class NumpyDType {
  constructor(readonly str: string) {}
}

function numpyScalar(dtype: PyValue, data: PyValue): PyValue {
  if (!(dtype instanceof NumpyDType) || !(data instanceof Uint8Array))
    return new PickleObject('numpy', 'scalar', [dtype, data]);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (dtype.str) {
    case 'f8':
      return dv.getFloat64(0, true);
    case 'f4':
      return dv.getFloat32(0, true);
    case 'i8': {
      const v = dv.getBigInt64(0, true);
      return Number.isSafeInteger(Number(v)) ? Number(v) : v;
    }
    case 'i4':
      return dv.getInt32(0, true);
    case 'b1':
      return data[0] !== 0;
    default:
      return new PickleObject('numpy', 'scalar', [dtype.str, data]);
  }
}

/** `('storage', storage_type, key, location, numel[, view_metadata])` persistent ids. */
function storageLoader(storages: Map<string, StorageRef>): (pid: PyValue) => PyValue {
  return (pid) => {
    if (!Array.isArray(pid) || pid[0] !== 'storage') throw new PickleError(`unsupported persistent id ${String(pid)}`);
    const [, type, key, , numel, view] = pid;
    if (!(type instanceof StorageType)) {
      const n = type instanceof PickleGlobal ? type.toString() : String(type);
      throw new PickleError(`unsupported storage type ${n} (supported: ${Object.keys(STORAGE_DTYPES).join(', ')})`);
    }
    const k = String(key);
    let s = storages.get(k);
    if (!s) {
      s = new StorageRef(k, type.dtype, typeof numel === 'number' ? numel : -1);
      storages.set(k, s);
    }
    if (Array.isArray(view) && view.length === 3) {
      // Pre-1.0 storage views: (view_key, offset, view_size) of the root storage `key`.
      const [vkey, voff, vsize] = view;
      const vs = new StorageRef(String(vkey), type.dtype, Number(vsize));
      vs.bytes = null;
      viewsOf.set(vs, { root: s, offset: Number(voff) });
      return vs;
    }
    return s;
  };
}
const viewsOf = new WeakMap<StorageRef, { root: StorageRef; offset: number }>();

function storageTensor(s: StorageRef): Tensor {
  if (s.tensor) return s.tensor;
  const v = viewsOf.get(s);
  if (v) {
    const root = storageTensor(v.root);
    s.tensor = root.narrow(0, v.offset, s.numel);
    return s.tensor;
  }
  if (!s.bytes) throw new PickleError(`storage '${s.key}' has no data in the file`);
  const n = s.bytes.byteLength / elementSize(s.dtype);
  if (!Number.isInteger(n) || (s.numel >= 0 && n < s.numel)) {
    throw new PickleError(`storage '${s.key}' holds ${s.bytes.byteLength} bytes, not ${s.numel} ${s.dtype} elements`);
  }
  s.tensor = tensor(s.bytes, { shape: [n], dtype: s.dtype });
  s.bytes = null;
  return s.tensor;
}

function materialize(r: TensorRef): Tensor {
  const st = storageTensor(r.storage);
  const total = st.numel();
  let last = r.offset;
  for (let i = 0; i < r.size.length; i++) if (r.size[i]! > 0) last += (r.size[i]! - 1) * r.stride[i]!;
  if (r.size.some((d) => d === 0)) last = r.offset - 1;
  if (r.offset < 0 || last >= total) {
    throw new PickleError(
      `tensor of size [${r.size}] stride [${r.stride}] at offset ${r.offset} overruns its storage of ${total} elements`,
    );
  }
  const view = op('aten::as_strided', '', [st, r.size, r.stride, r.offset]);
  // A compact row-major copy: views of a larger storage would otherwise keep all of it alive.
  const out = op('aten::clone', '', [view, MemoryFormat.contiguous]);
  view.dispose();
  return out;
}

/** Replaces every TensorRef in the tree by a Tensor (shared refs → the same Tensor). */
function resolveTensors(root: PyValue, storages: Map<string, StorageRef>): PyValue {
  const done = new Map<TensorRef, Tensor>();
  const seen = new Set<object>();
  const fix = (v: PyValue): PyValue => {
    if (v instanceof TensorRef) {
      let t = done.get(v);
      if (!t) {
        t = materialize(v);
        done.set(v, t);
      }
      return t;
    }
    if (v === null || typeof v !== 'object' || seen.has(v)) return v;
    seen.add(v);
    if (Array.isArray(v)) for (let i = 0; i < v.length; i++) v[i] = fix(v[i]!);
    else if (v instanceof Map) for (const [k, x] of v) v.set(k, fix(x));
    else if (v instanceof Set) {
      const xs = [...v];
      v.clear();
      for (const x of xs) v.add(fix(x));
    } else if (v instanceof PickleObject) {
      for (let i = 0; i < v.args.length; i++) v.args[i] = fix(v.args[i]!);
      for (let i = 0; i < v.listItems.length; i++) v.listItems[i] = fix(v.listItems[i]!);
      for (const [k, x] of v.dictItems) v.dictItems.set(k, fix(x));
      if (v.state !== undefined) v.state = fix(v.state);
    }
    return v;
  };
  try {
    return fix(root);
  } finally {
    for (const s of storages.values()) s.tensor?.dispose();
  }
}

function build(obj: PyValue, state: PyValue): PyValue {
  // OrderedDict state dicts carry `_metadata` (module versions) and argparse.Namespace its attributes.
  if (obj instanceof Map && state instanceof Map) {
    for (const [k, v] of state) if (k !== '_metadata') obj.set(k, v);
  }
  return obj;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** True when the bytes start like a zip archive (the torch ≥ 1.6 format). */
export function isZip(b: Uint8Array): boolean {
  return ZIP_MAGIC.every((x, i) => b[i] === x);
}

/**
 * Loads a torch.save file. Dicts come back as Maps, tensors as CPU {@link Tensor}s (compact copies; dispose
 * them, e.g. with `dispose()` from the torch module), unknown classes as {@link PickleObject}s.
 */
export function loadTorch(path: string, opts: TorchLoadOptions = {}): PyValue {
  let data: Uint8Array;
  try {
    data = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  try {
    return loadTorchBytes(data, opts);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** {@link loadTorch} on bytes already in memory. */
export function loadTorchBytes(data: Uint8Array, opts: TorchLoadOptions = {}): PyValue {
  return isZip(data) ? loadZip(data, opts) : loadLegacy(data, opts);
}

/** The most a zip member may inflate: 100× its stored size plus 1 MiB (text compresses ~5–10×; PyTorch stores). */
const ZIP_MAX_RATIO = 100;
const ZIP_SLACK = 2 ** 20;

function loadZip(data: Uint8Array, opts: TorchLoadOptions): PyValue {
  let files: Record<string, Uint8Array>;
  try {
    // PyTorch stores its records uncompressed; a member that would inflate far beyond its stored size is a zip
    // bomb and is refused from the directory, before any byte is inflated.
    files = unzipSync(data, {
      filter: (f) => {
        if (f.originalSize > ZIP_MAX_RATIO * f.size + ZIP_SLACK)
          throw new Error(`member ${f.name} would inflate from ${f.size} to ${f.originalSize} bytes (a zip bomb?)`);
        return true;
      },
    });
  } catch (e) {
    throw new Error(`not a readable zip archive (${(e as Error).message})`, { cause: e });
  }
  if (Object.keys(files).some((n) => n.endsWith('constants.pkl'))) {
    throw new Error('this is a TorchScript archive (torch.jit.save); save a state_dict with torch.save instead');
  }
  const pkl = Object.keys(files).find((n) => n === 'data.pkl' || /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) throw new Error('zip archive without data.pkl: not a torch.save file');
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const order = files[`${prefix}byteorder`];
  if (order && new TextDecoder().decode(order).trim() === 'big')
    throw new Error('big-endian checkpoints are not supported');
  const storages = new Map<string, StorageRef>();
  const { value } = unpickle(files[pkl]!, {
    resolveGlobal: checkpointGlobals(opts.strict ?? false),
    persistentLoad: storageLoader(storages),
    build,
  });
  for (const s of storages.values()) {
    const rec = files[`${prefix}data/${s.key}`];
    if (!rec) throw new Error(`storage record '${prefix}data/${s.key}' is missing from the archive`);
    s.bytes = rec;
  }
  return resolveTensors(value, storages);
}

function loadLegacy(data: Uint8Array, opts: TorchLoadOptions): PyValue {
  if (data[0] !== 0x80) {
    if (data.length > 262 && new TextDecoder().decode(data.subarray(257, 262)) === 'ustar')
      throw new Error('the pre-0.4 tar checkpoint format is not supported');
    throw new Error('not a PyTorch checkpoint (neither a zip archive nor a pickle)');
  }
  const plain = { resolveGlobal: checkpointGlobals(true) };
  const magic = unpickle(data, plain, 0);
  if (magic.value !== LEGACY_MAGIC) throw new Error('pickle file is not a torch.save checkpoint (wrong magic number)');
  const proto = unpickle(data, plain, magic.end);
  if (proto.value !== 1001)
    throw new Error(`legacy checkpoint protocol ${String(proto.value)} is not supported (1001 is)`);
  const sys = unpickle(data, plain, proto.end);
  if (sys.value instanceof Map && sys.value.get('little_endian') === false)
    throw new Error('big-endian checkpoints are not supported');
  const storages = new Map<string, StorageRef>();
  const obj = unpickle(
    data,
    { resolveGlobal: checkpointGlobals(opts.strict ?? false), persistentLoad: storageLoader(storages), build },
    sys.end,
  );
  const keys = unpickle(data, plain, obj.end);
  if (!Array.isArray(keys.value)) throw new Error('legacy checkpoint: storage key list missing');
  let p = keys.end;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (const k of keys.value) {
    const s = storages.get(String(k));
    if (!s) throw new Error(`legacy checkpoint: storage '${String(k)}' is listed but never used`);
    if (p + 8 > data.length) throw new Error('legacy checkpoint truncated in the storage section');
    const n = Number(dv.getBigInt64(p, true));
    const nbytes = n * elementSize(s.dtype);
    p += 8;
    if (p + nbytes > data.length) throw new Error(`legacy checkpoint truncated in storage '${s.key}'`);
    s.bytes = data.subarray(p, p + nbytes);
    p += nbytes;
  }
  return resolveTensors(obj.value, storages);
}
