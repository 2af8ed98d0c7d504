// A restricted Python unpickler (protocols 0–5). It builds plain JS values and never runs code: every GLOBAL
// goes through a caller-supplied resolver, which either returns a handler for an allowed name or refuses it.
// We write the VM ourselves because no maintained npm pickle parser lets us vet globals before use.

// Interfaces rather than type aliases: PyValue refers to them and they to PyValue.
/** A Python dict (insertion-ordered, keys of any pickled type). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface PyDict extends Map<PyValue, PyValue> {}
/** A Python list or tuple. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface PyList extends Array<PyValue> {}

/**
 * A value the unpickler can produce. Dicts become Maps, lists and tuples arrays, bytes Uint8Arrays, ints
 * numbers (bigint beyond 2^53), and anything a resolver builds (tensors, placeholders) an object.
 */
export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyList | PyDict | Set<PyValue> | object;

/** A class or function named by a GLOBAL that is not known: kept as its name, never imported. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An instance of a class the loader does not know: an inert record of what the pickle would have built
 * (constructor arguments, `__setstate__` state, list/dict items). Nothing of it is executed.
 */
export class PickleObject {
  /** The state passed to BUILD (usually the instance's `__dict__`), or undefined. */
  state: PyValue | undefined = undefined;
  /** Items appended by APPENDS (list subclasses). */
  readonly listItems: PyValue[] = [];
  /** Items set by SETITEMS (dict subclasses). */
  readonly dictItems: PyDict = new Map();
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: PyValue[],
  ) {}
  toString(): string {
    return `<${this.module}.${this.name} placeholder>`;
  }
}

/** What a resolved GLOBAL does when the pickle calls it (REDUCE, NEWOBJ) or sets its state (BUILD). */
export interface PickleCallable {
  call(args: PyValue[]): PyValue;
}

export interface UnpickleOptions {
  /**
   * Maps a GLOBAL `module.name` to a value: a {@link PickleCallable}, any constant, or undefined to make it an
   * inert {@link PickleGlobal}. Throw to refuse it (the whole load fails before anything uses it).
   */
  resolveGlobal(module: string, name: string): PyValue | PickleCallable | undefined;
  /** Turns a persistent id (PERSID/BINPERSID) into a value; without it persistent ids are refused. */
  persistentLoad?(pid: PyValue): PyValue;
  /** Applies BUILD state to an object produced by a resolver; default: ignore state on non-placeholders. */
  build?(obj: PyValue, state: PyValue): PyValue;
}

export class PickleError extends Error {
  override name = 'PickleError';
}

const MARK = Symbol('mark');

function isCallable(v: unknown): v is PickleCallable {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as PickleCallable).call === 'function' &&
    !(v instanceof PickleGlobal)
  );
}

/**
 * Bounds on what one pickle may build, far above any checkpoint's (a state dict nests a few levels deep and
 * keeps a few items per tensor on the stack) and far below what would exhaust memory: a file of MARK, DUP or
 * MEMOIZE opcodes is refused in milliseconds instead of allocating gigabytes.
 */
export const PICKLE_LIMITS = { markDepth: 10_000, stackItems: 1_000_000, memoEntries: 1_000_000 } as const;

const dec = new TextDecoder('utf-8', { fatal: false });
const latin1 = new TextDecoder('latin1');

/**
 * Unpickles one pickle from `data` starting at `offset`. Returns the value and the offset just after STOP
 * (legacy torch files hold several pickles back to back).
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions, offset = 0): { value: PyValue; end: number } {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let p = offset;
  let stack: (PyValue | typeof MARK)[] = [];
  const metastack: (PyValue | typeof MARK)[][] = [];
  const memo = new Map<number, PyValue>();

  const need = (n: number): void => {
    if (p + n > data.length) throw new PickleError(`pickle truncated at byte ${p} (needs ${n} more bytes)`);
  };
  const u8 = (): number => {
    need(1);
    return data[p++]!;
  };
  const u16 = (): number => {
    need(2);
    const v = dv.getUint16(p, true);
    p += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = dv.getUint32(p, true);
    p += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = dv.getInt32(p, true);
    p += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError(`pickle length ${v} too large`);
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(p, p + n);
    p += n;
    return b;
  };
  const line = (): string => {
    const e = data.indexOf(0x0a, p);
    if (e < 0) throw new PickleError(`pickle truncated: no newline after byte ${p}`);
    const s = latin1.decode(data.subarray(p, e));
    p = e + 1;
    return s;
  };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) throw new PickleError(`pickle stack underflow at byte ${p - 1}`);
    if (v === MARK) throw new PickleError(`unexpected MARK on the pickle stack at byte ${p - 1}`);
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw new PickleError(`pickle stack empty at byte ${p - 1}`);
    return v;
  };
  const popMark = (): PyValue[] => {
    const items = stack as PyValue[];
    const prev = metastack.pop();
    if (!prev) throw new PickleError(`MARK missing at byte ${p - 1}`);
    stack = prev;
    return items;
  };
  const fromLong = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return normInt(v);
  };
  const global = (module: string, name: string): PyValue => {
    const r = opts.resolveGlobal(module, name);
    return r === undefined ? new PickleGlobal(module, name) : r;
  };
  const call = (fn: PyValue, args: PyValue): PyValue => {
    const a = Array.isArray(args) ? (args as PyValue[]) : [args];
    if (isCallable(fn)) return fn.call(a);
    if (fn instanceof PickleGlobal) return new PickleObject(fn.module, fn.name, a);
    throw new PickleError(`pickle calls a non-callable (${describe(fn)}) at byte ${p - 1}`);
  };
  const setItems = (target: PyValue, items: PyValue[]): void => {
    if (items.length % 2) throw new PickleError('SETITEMS with an odd number of items');
    const m = target instanceof Map ? (target as PyDict) : target instanceof PickleObject ? target.dictItems : null;
    if (!m) throw new PickleError(`SETITEMS on ${describe(target)}`);
    for (let i = 0; i < items.length; i += 2) m.set(items[i]!, items[i + 1]!);
  };
  const appendItems = (target: PyValue, items: PyValue[]): void => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PickleObject) target.listItems.push(...items);
    else if (target instanceof Set) for (const x of items) target.add(x);
    else throw new PickleError(`APPEND on ${describe(target)}`);
  };

  for (;;) {
    const at = p;
    if (
      metastack.length > PICKLE_LIMITS.markDepth ||
      stack.length > PICKLE_LIMITS.stackItems ||
      memo.size > PICKLE_LIMITS.memoEntries
    ) {
      throw new PickleError(
        `pickle refused at byte ${p}: ${metastack.length > PICKLE_LIMITS.markDepth ? `MARKs nested ${metastack.length} deep` : stack.length > PICKLE_LIMITS.stackItems ? `${stack.length} items on the stack` : `${memo.size} memo entries`}, beyond what a checkpoint holds (a pickle bomb?)`,
      );
    }
    const opc = u8();
    switch (opc) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v > 5) throw new PickleError(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95:
        p += 8;
        need(0);
        break; // FRAME: framing is only a read-ahead hint
      case 0x2e: {
        // STOP
        const v = pop();
        return { value: v, end: p };
      }
      case 0x28:
        metastack.push(stack);
        stack = [];
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      // ------------------------------------------------ numbers
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x8a:
        stack.push(fromLong(bytes(u8())));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) throw new PickleError('LONG4 with a negative length');
        stack.push(fromLong(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (text; protocol 0 bools are I00/I01)
        const s = line();
        stack.push(s === '00' ? false : s === '01' ? true : normInt(BigInt(s)));
        break;
      }
      case 0x4c:
        stack.push(normInt(BigInt(line().replace(/L$/, ''))));
        break; // LONG (text)
      case 0x46:
        stack.push(Number.parseFloat(line()));
        break; // FLOAT (text)
      case 0x47:
        need(8);
        stack.push(dv.getFloat64(p, false));
        p += 8;
        break; // BINFLOAT (big-endian)
      // ------------------------------------------------ strings and bytes
      case 0x58:
        stack.push(dec.decode(bytes(u32())));
        break; // BINUNICODE
      case 0x8c:
        stack.push(dec.decode(bytes(u8())));
        break; // SHORT_BINUNICODE
      case 0x8d:
        stack.push(dec.decode(bytes(u64())));
        break; // BINUNICODE8
      case 0x56:
        stack.push(rawUnicodeEscape(line()));
        break; // UNICODE (text)
      case 0x55:
        stack.push(latin1.decode(bytes(u8())));
        break; // SHORT_BINSTRING (py2 str)
      case 0x54: {
        // BINSTRING
        const n = i32();
        if (n < 0) throw new PickleError('BINSTRING with a negative length');
        stack.push(latin1.decode(bytes(n)));
        break;
      }
      case 0x53:
        stack.push(pyStringLiteral(line()));
        break; // STRING (quoted repr)
      case 0x43:
        stack.push(bytes(u8()).slice());
        break; // SHORT_BINBYTES
      case 0x42:
        stack.push(bytes(u32()).slice());
        break; // BINBYTES
      case 0x8e:
        stack.push(bytes(u64()).slice());
        break; // BINBYTES8
      case 0x96:
        stack.push(bytes(u64()).slice());
        break; // BYTEARRAY8
      case 0x97:
        throw new PickleError('pickle uses out-of-band buffers (NEXT_BUFFER), which torch files never do');
      case 0x98:
        break; // READONLY_BUFFER: no-op on our copies
      // ------------------------------------------------ containers
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      case 0x74: {
        const items = popMark();
        stack.push(items);
        break;
      } // TUPLE (pop first: popMark swaps `stack`)
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x6c: {
        const items = popMark();
        stack.push(items);
        break;
      } // LIST
      case 0x61: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        appendItems(top(), items);
        break;
      } // APPENDS
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x64: {
        const items = popMark();
        const m: PyDict = new Map();
        setItems(m, items);
        stack.push(m);
        break;
      } // DICT
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      } // SETITEMS
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x90: {
        const items = popMark();
        appendItems(top(), items);
        break;
      } // ADDITEMS
      case 0x91: {
        const items = popMark();
        stack.push(new Set(items));
        break;
      } // FROZENSET
      // ------------------------------------------------ memo
      case 0x70:
        memo.set(Number(line()), top());
        break; // PUT
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x67:
        stack.push(memoGet(memo, Number(line())));
        break; // GET
      case 0x68:
        stack.push(memoGet(memo, u8()));
        break; // BINGET
      case 0x6a:
        stack.push(memoGet(memo, u32()));
        break; // LONG_BINGET
      // ------------------------------------------------ objects: only through the resolver
      case 0x63: {
        const mod = line();
        const name = line();
        stack.push(global(mod, name));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const mod = pop();
        if (typeof mod !== 'string' || typeof name !== 'string')
          throw new PickleError('STACK_GLOBAL needs two strings');
        stack.push(global(mod, name));
        break;
      }
      case 0x52: {
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      } // REDUCE
      case 0x81: {
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      } // NEWOBJ
      case 0x92: {
        pop();
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      } // NEWOBJ_EX (kwargs dropped)
      case 0x69: {
        // INST (protocol 0): MARK args... INST module\nname\n
        const mod = line();
        const name = line();
        const args = popMark();
        stack.push(call(global(mod, name), args));
        break;
      }
      case 0x6f: {
        const items = popMark();
        const cls = items.shift();
        stack.push(call(cls ?? null, items));
        break;
      } // OBJ
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        else if (opts.build) stack[stack.length - 1] = opts.build(obj, state);
        break;
      }
      case 0x50: {
        // PERSID (text)
        if (!opts.persistentLoad) throw new PickleError('pickle has a persistent id but no loader for it');
        stack.push(opts.persistentLoad(line()));
        break;
      }
      case 0x51: {
        // BINPERSID
        if (!opts.persistentLoad) throw new PickleError('pickle has a persistent id but no loader for it');
        stack.push(opts.persistentLoad(pop()));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        throw new PickleError('pickle uses the copyreg extension registry (EXT1/2/4), which is not supported');
      default:
        throw new PickleError(`unknown pickle opcode 0x${opc.toString(16)} at byte ${at}`);
    }
  }
}

function memoGet(memo: Map<number, PyValue>, i: number): PyValue {
  if (!memo.has(i)) throw new PickleError(`pickle memo has no entry ${i}`);
  return memo.get(i)!;
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a tuple/list';
  if (v instanceof Map) return 'a dict';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return typeof v;
}

/** Decodes Python's raw-unicode-escape (protocol 0 UNICODE): only \uXXXX and \UXXXXXXXX are escapes. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a: string | undefined, b: string | undefined) =>
    String.fromCodePoint(Number.parseInt((a ?? b)!, 16)),
  );
}

/** Decodes a protocol 0 STRING argument: a quoted Python literal with backslash escapes. */
function pyStringLiteral(s: string): string {
  const q = s[0];
  if ((q !== "'" && q !== '"') || s[s.length - 1] !== q)
    throw new PickleError(`STRING argument is not quoted: ${s.slice(0, 40)}`);
  const body = s.slice(1, -1);
  const simple: Record<string, string> = {
    n: '\n',
    r: '\r',
    t: '\t',
    '\\': '\\',
    "'": "'",
    '"': '"',
    a: '\x07',
    b: '\b',
    f: '\f',
    v: '\v',
    '0': '\0',
  };
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(Number.parseInt(e, 8));
    return simple[e] ?? `\\${e}`;
  });
}
