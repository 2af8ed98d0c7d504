// The restricted unpickler: Python's pickles of every protocol decode to the same values; code-running
// globals are refused before anything is built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PickleObject, unpickle, type PyValue } from '../../src/io/pickle.js';
import { checkpointGlobals, loadTorch, loadTorchBytes } from '../../src/io/torch-pickle.js';
import { python } from '../helpers/interop.js';
import { tmpDir } from '../helpers/pytorch.js';

/** A canonical JSON form, the same as canon() in the Python snippet below. */
function canon(v: PyValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? `i${v}` : `f${v.toPrecision(12)}`;
  if (typeof v === 'bigint') return `i${v}`;
  if (v instanceof Uint8Array) return { bytes: [...v] };
  if (Array.isArray(v)) return v.map(canon);
  if (v instanceof Set)
    return {
      set: [...v]
        .map(canon)
        .map((x) => JSON.stringify(x))
        .sort(),
    };
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [JSON.stringify(canon(k)), canon(x)]));
  throw new Error(`unexpected value ${String(v)}`);
}

const PY = String.raw`
import pickle, json, sys, base64
lst = [1, 2]
value = {'a': [1, 2.5, None, True, False], 'b': (1, 'x'), 'big': 2**70, 'nbig': -2**65, 'neg': -5, 'i32': -2**31, 'u16': 65535,
         's': 'h\u00e9llo \u2603', 'bytes': b'\x00\x01\xff', 'set': {1, 2}, 'fs': frozenset({3}), 'nested': {'k': [{'z': 1}]},
         'f': 1e-300, 'nf': -0.1, 7: 'intkey', 'shared': lst, 'shared2': lst, 'empty': (), 'long_list': list(range(1500))}
def canon(v):
    if v is None or isinstance(v, (bool, str)): return v
    if isinstance(v, int): return 'i%d' % v
    if isinstance(v, float): return 'f' + ('%.12g' % v if v != int(v) or abs(v) > 1e15 else repr(v))
    if isinstance(v, bytes): return {'bytes': list(v)}
    if isinstance(v, (list, tuple)): return [canon(x) for x in v]
    if isinstance(v, (set, frozenset)): return {'set': sorted(json.dumps(canon(x), separators=(',', ':')) for x in v)}
    if isinstance(v, dict): return {json.dumps(canon(k), separators=(',', ':')): canon(x) for k, x in v.items()}
print(json.dumps({'canon': canon(value), 'pickles': [base64.b64encode(pickle.dumps(value, protocol=p)).decode() for p in range(6)]}))
`;

test('pickles of protocols 0–5 decode to the same values as Python', () => {
  const out = JSON.parse(python(PY)) as { canon: unknown; pickles: string[] };
  for (let p = 0; p <= 5; p++) {
    const bytes = Buffer.from(out.pickles[p]!, 'base64');
    const { value, end } = unpickle(bytes, { resolveGlobal: checkpointGlobals(true) });
    assert.equal(end, bytes.length, `protocol ${p}: consumed all bytes`);
    // JS and Python print floats differently; compare through the same JSON canonicalisation.
    const ours = JSON.parse(
      JSON.stringify(canon(value)).replace(/"f([-0-9.e+]+)"/g, (_m, f: string) => `"f${Number(f)}"`),
    );
    const theirs = JSON.parse(
      JSON.stringify(out.canon).replace(/"f([-0-9.e+]+)"/g, (_m, f: string) => `"f${Number(f)}"`),
    );
    assert.deepEqual(ours, theirs, `protocol ${p}`);
    const m = value as Map<PyValue, PyValue>;
    assert.equal(m.get('shared'), m.get('shared2'), `protocol ${p}: memo keeps shared references`);
  }
});

// A legacy torch.save file around an object pickle: magic number, protocol 1001, sys info, object, no storages.
function legacyFile(obj: Uint8Array): Buffer {
  const header = Buffer.from('\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.\x80\x02}q\x00.', 'latin1');
  return Buffer.concat([header, obj, Buffer.from('\x80\x02].', 'latin1')]);
}

test('GLOBAL os.system is refused before anything runs (text GLOBAL, STACK_GLOBAL, eval, torch zip)', () => {
  const dir = tmpDir();
  try {
    const marker = join(dir, 'PWNED');
    const p0 = Buffer.from(`cos\nsystem\n(S'touch ${marker}'\ntR.`, 'latin1');
    const [p4, evalPickle] = python(
      String.raw`
import pickle, os, sys, base64
class E:
    def __reduce__(self): return (os.system, ('touch ' + sys.argv[1],))
class B:
    def __reduce__(self): return (eval, ('print(1)',))
print(base64.b64encode(pickle.dumps({'x': E()}, protocol=4)).decode())
print(base64.b64encode(pickle.dumps([B()], protocol=2)).decode())
`,
      [marker],
    )
      .trim()
      .split('\n')
      .map((l) => Buffer.from(l, 'base64'));
    const cases: [string, Uint8Array, RegExp][] = [
      ['protocol 0 GLOBAL', p0, /refused to load 'os\.system'/],
      ['protocol 4 STACK_GLOBAL', p4!, /refused to load 'posix\.system'/],
      ['builtins.eval', evalPickle!, /refused to load '(builtins|__builtin__)\.eval'/],
    ];
    for (const [label, bytes, re] of cases) {
      assert.throws(() => loadTorchBytes(legacyFile(bytes)), re, label);
      // Without the whitelist the same pickle only yields an inert placeholder: the VM has no way to run code.
      assert.doesNotThrow(() => unpickle(bytes, { resolveGlobal: () => undefined }), label);
    }
    // The same inside a torch.save zip archive.
    python(
      String.raw`
import pickle, os, sys, zipfile
class E:
    def __reduce__(self): return (os.system, ('touch ' + sys.argv[1],))
with zipfile.ZipFile(sys.argv[2], 'w') as z:
    z.writestr('archive/data.pkl', pickle.dumps({'state_dict': E()}, protocol=2))
    z.writestr('archive/version', '3\n')
`,
      [marker, join(dir, 'evil.pth')],
    );
    assert.throws(() => loadTorch(join(dir, 'evil.pth')), /refused to load 'posix\.system'/);
    assert.ok(!existsSync(marker), 'nothing was executed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unknown classes become inert placeholders; strict mode refuses them', () => {
  const bytes = Buffer.from(
    python(String.raw`
import pickle, base64, argparse
class Cfg:
    def __init__(self): self.lr = 0.1; self.name = 'r50'
import sys, types
Cfg.__module__ = 'mylib.config'
sys.modules['mylib'] = types.ModuleType('mylib')
sys.modules['mylib.config'] = types.ModuleType('mylib.config')
sys.modules['mylib.config'].Cfg = Cfg
print(base64.b64encode(pickle.dumps({'cfg': Cfg(), 'args': argparse.Namespace(arch='resnet50', lr=0.03)}, protocol=2)).decode())
`).trim(),
    'base64',
  );
  const file = legacyFile(bytes);
  const v = loadTorchBytes(file) as Map<string, PyValue>;
  const cfg = v.get('cfg');
  assert.ok(cfg instanceof PickleObject);
  assert.equal(`${cfg.module}.${cfg.name}`, 'mylib.config.Cfg');
  assert.equal((cfg.state as Map<string, PyValue>).get('lr'), 0.1);
  const args = v.get('args') as Map<string, PyValue>;
  assert.equal(args.get('arch'), 'resnet50');
  assert.throws(() => loadTorchBytes(file, { strict: true }), /refused to load 'mylib\.config\.Cfg'.*strict/);
});
