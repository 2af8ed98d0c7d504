// Writes torch.save files in the zip format that torch.load reads (torch 1.6 … 2.x): `<archive>/data.pkl`
// (pickle protocol 2; tensors as torch._utils._rebuild_tensor_v2 over persistent storage ids),
// `<archive>/byteorder`, `<archive>/data/<i>` (raw little-endian storages), `<archive>/version`.
import { Tensor } from '../torch/index.js';
import { writeFileAtomic } from './atomic.js';
import { ZipWriter } from './zip-writer.js';
import type { DType } from '../torch/dtype.js';

/** A Python tuple, for writing (arrays are written as lists). */
export class PyTuple {
  constructor(readonly items: SaveValue[]) {}
}

/** A Python float, for writing a number that happens to be integral as a float. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/**
 * What {@link saveTorch} writes: `Map` → `collections.OrderedDict` (what `state_dict()` returns), plain object →
 * dict, array → list, {@link PyTuple} → tuple, integral number → int, other number or {@link PyFloat} → float,
 * bigint → int, Uint8Array → bytes, Tensor → torch.Tensor.
 */
export type SaveValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Tensor
  | PyTuple
  | PyFloat
  | SaveValue[]
  | Map<string | number, SaveValue>
  | { [key: string]: SaveValue };

const STORAGE_CLASS: Record<DType, string> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  bfloat16: 'BFloat16Storage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

/** Builds a protocol 2 pickle; memoises globals and strings so the output resembles Python's. */
class Pickler {
  private readonly chunks: Buffer[] = [];
  private readonly memo = new Map<string, number>();
  /** Tensors in storage-key order. */
  readonly storages: Tensor[] = [];
  private readonly storageOf = new Map<Tensor, number>();

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  private raw(...b: number[]): void {
    this.chunks.push(Buffer.from(b));
  }
  private put(key: string): void {
    const i = this.memo.size;
    this.memo.set(key, i);
    this.memoOp(0x71, 0x72, i);
  }
  private memoOp(short: number, long: number, i: number): void {
    if (i < 256) this.raw(short, i);
    else {
      const b = Buffer.alloc(5);
      b[0] = long;
      b.writeUInt32LE(i, 1);
      this.chunks.push(b);
    }
  }
  private get(key: string): boolean {
    const i = this.memo.get(key);
    if (i === undefined) return false;
    this.memoOp(0x68, 0x6a, i); // BINGET / LONG_BINGET
    return true;
  }

  proto(): void {
    this.raw(0x80, 2);
  }
  stop(): void {
    this.raw(0x2e);
  }

  global(module: string, name: string): void {
    const key = `g:${module}\n${name}`;
    if (this.get(key)) return;
    this.chunks.push(Buffer.from(`c${module}\n${name}\n`, 'utf8'));
    this.put(key);
  }

  str(s: string): void {
    const key = `s:${s}`;
    if (this.get(key)) return;
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.chunks.push(h, b);
    this.put(key);
  }

  int(v: number | bigint): void {
    if (typeof v === 'number' && v >= 0 && v < 256) this.raw(0x4b, v);
    else if (typeof v === 'number' && v >= 0 && v < 65536) this.raw(0x4d, v & 0xff, v >> 8);
    else if (typeof v === 'number' && v >= -0x80000000 && v <= 0x7fffffff) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(v, 1);
      this.chunks.push(b);
    } else {
      // LONG1: little-endian two's complement, minimal length.
      let x = BigInt(v);
      const out: number[] = [];
      for (;;) {
        out.push(Number(x & 0xffn));
        x >>= 8n;
        const sign = out[out.length - 1]! & 0x80;
        if ((x === 0n && !sign) || (x === -1n && sign)) break;
      }
      this.raw(0x8a, out.length, ...out);
    }
  }

  float(v: number): void {
    const b = Buffer.alloc(9);
    b[0] = 0x47; // BINFLOAT, big-endian
    b.writeDoubleBE(v, 1);
    this.chunks.push(b);
  }

  tuple(items: (() => void)[]): void {
    if (items.length === 0) {
      this.raw(0x29);
      return;
    }
    if (items.length <= 3) {
      for (const f of items) f();
      this.raw(0x84 + items.length);
      return;
    } // TUPLE1..3
    this.raw(0x28);
    for (const f of items) f();
    this.raw(0x74);
  }

  tensor(t: Tensor): void {
    let key = this.storageOf.get(t);
    if (key === undefined) {
      key = this.storages.length;
      this.storages.push(t);
      this.storageOf.set(t, key);
    }
    const shape = t.shape;
    const stride: number[] = new Array<number>(shape.length);
    for (let i = shape.length - 1, s = 1; i >= 0; i--) {
      stride[i] = s;
      s *= shape[i]!;
    }
    this.global('torch._utils', '_rebuild_tensor_v2');
    this.raw(0x28); // MARK (args)
    const k = key;
    this.tuple([
      () => this.str('storage'),
      () => this.global('torch', STORAGE_CLASS[t.dtype]),
      () => this.str(String(k)),
      () => this.str('cpu'),
      () => this.int(t.numel()),
    ]);
    this.raw(0x51); // BINPERSID
    this.int(0);
    this.tuple(shape.map((d) => () => this.int(d)));
    this.tuple(stride.map((d) => () => this.int(d)));
    this.raw(0x89); // requires_grad False
    this.global('collections', 'OrderedDict');
    this.raw(0x29, 0x52); // OrderedDict() backward hooks
    this.raw(0x74, 0x52); // TUPLE, REDUCE
  }

  value(v: SaveValue): void {
    if (v === null) this.raw(0x4e);
    else if (v === true) this.raw(0x88);
    else if (v === false) this.raw(0x89);
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && !Object.is(v, -0)) this.int(v);
      else this.float(v);
    } else if (typeof v === 'bigint') this.int(v);
    else if (typeof v === 'string') this.str(v);
    else if (v instanceof PyFloat) this.float(v.value);
    else if (v instanceof Tensor) this.tensor(v);
    else if (v instanceof Uint8Array) {
      const h = Buffer.alloc(5);
      h[0] = 0x42; // BINBYTES (protocol 3: torch.load reads it)
      h.writeUInt32LE(v.byteLength, 1);
      this.chunks.push(h, Buffer.from(v));
    } else if (v instanceof PyTuple) this.tuple(v.items.map((x) => () => this.value(x)));
    else if (Array.isArray(v)) {
      this.raw(0x5d); // EMPTY_LIST
      if (v.length) {
        this.raw(0x28);
        for (const x of v) this.value(x);
        this.raw(0x65); // APPENDS
      }
    } else if (v instanceof Map) {
      this.global('collections', 'OrderedDict');
      this.raw(0x29, 0x52);
      this.items([...v.entries()]);
    } else {
      this.raw(0x7d); // EMPTY_DICT
      this.items(Object.entries(v));
    }
  }

  private items(entries: [string | number, SaveValue][]): void {
    // SETITEMS in batches of 1000, as Python does.
    for (let i = 0; i < entries.length; i += 1000) {
      this.raw(0x28);
      for (const [k, x] of entries.slice(i, i + 1000)) {
        this.value(k);
        this.value(x);
      }
      this.raw(0x75);
    }
  }
}

export interface TorchSaveOptions {
  /** The archive's top folder name (torch uses the file's base name); default 'archive'. */
  archiveName?: string;
}

/**
 * Writes `value` as torch.save would, atomically. Tensors are written as contiguous CPU copies; the same
 * Tensor object appearing twice shares one storage.
 */
export function saveTorch(path: string, value: SaveValue, opts: TorchSaveOptions = {}): void {
  const name = opts.archiveName ?? 'archive';
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`saveTorch: archive name '${name}' must be a plain file name`);
  const p = new Pickler();
  p.proto();
  p.value(value);
  p.stop();
  const pkl = p.bytes();
  writeFileAtomic(path, (fd) => {
    const z = new ZipWriter(fd);
    z.add(`${name}/data.pkl`, pkl);
    z.add(`${name}/byteorder`, Buffer.from('little'));
    p.storages.forEach((t, i) => {
      const d = t.data(); // contiguous CPU copy
      z.add(`${name}/data/${i}`, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    });
    z.add(`${name}/version`, Buffer.from('3\n'));
    z.finish();
  });
}
