// Writing torch.save files: torch.load reads every dtype and value kind; `moco export --format torchvision`
// loads into torchvision's resnet with strict=True and gives the same features.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { PyFloat, PyTuple, saveTorch } from '../../src/io/torch-save.js';
import { loadTorch, type PyValue } from '../../src/io/torch-pickle.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { arange, dispose, manualSeed, randn, tensor, Tensor } from '../../src/torch/index.js';
import { interop, python } from '../helpers/interop.js';
import { assertClose, repoRoot, tmpDir } from '../helpers/pytorch.js';

test('torch.load reads what saveTorch writes (dtypes, nesting, shared tensors) and so do we', () => {
  const dir = tmpDir();
  try {
    manualSeed(1);
    const f32 = randn([3, 4]);
    const tensors = new Map<string, Tensor>([
      ['f32', f32],
      ['f64', arange(6).to('float64').reshape(2, 3)],
      ['f16', randn([5]).to('float16')],
      ['bf16', randn([2, 2]).to('bfloat16')],
      ['i64', tensor(new BigInt64Array([-(2n ** 40n), 5n]), { dtype: 'int64' })],
      ['u8', tensor(new Uint8Array([0, 255]))],
      ['b', tensor(new Uint8Array([1, 0, 1]), { dtype: 'bool' })],
      ['scalar', tensor(new Float32Array([2.5]), { shape: [] })],
      ['transposed', f32.t()],
      ['same', f32],
    ]);
    const path = join(dir, 'out.pth');
    saveTorch(path, {
      state_dict: tensors,
      epoch: 7,
      lr: 0.03,
      one: new PyFloat(1),
      t: new PyTuple([1, 'a', null]),
      l: [true, 2n ** 70n, -3],
      b: new Uint8Array([1, 2]),
    });
    const report = python(
      String.raw`
import sys, json, torch
# Every value kind, bytes included, which torch ≥ 2.6's default weights_only loader refuses (the state dicts
# moco export writes load with the default: see the next test).
v = torch.load(sys.argv[1], weights_only=False)
sd = v['state_dict']
print(json.dumps({
  'type': type(sd).__name__, 'keys': list(sd.keys()),
  'dtypes': {k: str(t.dtype) for k, t in sd.items()},
  'shapes': {k: list(t.shape) for k, t in sd.items()},
  'sums': {k: float(t.double().sum()) for k, t in sd.items()},
  'transposed_ok': bool(torch.equal(sd['transposed'], sd['f32'].t())),
  'shared': sd['same'].data_ptr() == sd['f32'].data_ptr(),
  'epoch': v['epoch'], 'lr': v['lr'], 'one': repr(v['one']), 't': repr(v['t']), 'l': repr(v['l']), 'b': repr(v['b']),
}))
`,
      [path],
    );
    const r = JSON.parse(report) as Record<string, unknown>;
    assert.equal(r.type, 'OrderedDict');
    assert.deepEqual(r.keys, [...tensors.keys()]);
    assert.deepEqual(r.dtypes, {
      f32: 'torch.float32',
      f64: 'torch.float64',
      f16: 'torch.float16',
      bf16: 'torch.bfloat16',
      i64: 'torch.int64',
      u8: 'torch.uint8',
      b: 'torch.bool',
      scalar: 'torch.float32',
      transposed: 'torch.float32',
      same: 'torch.float32',
    });
    for (const [k, t] of tensors) {
      assert.deepEqual((r.shapes as Record<string, number[]>)[k], t.shape, k);
      const s = t.to('float64').sum().item();
      assert.ok(Math.abs((r.sums as Record<string, number>)[k]! - s) <= 1e-9 * (1 + Math.abs(s)), `${k} sum`);
    }
    assert.equal(r.transposed_ok, true);
    assert.equal(r.shared, true, 'the same Tensor shares one storage');
    assert.deepEqual(
      [r.epoch, r.lr, r.one, r.t, r.l, r.b],
      [7, 0.03, '1.0', "(1, 'a', None)", '[True, 1180591620717411303424, -3]', "b'\\x01\\x02'"],
    );
    // And our reader gets the tensors back bit for bit.
    const back = (loadTorch(path) as Map<string, PyValue>).get('state_dict') as Map<string, Tensor>;
    for (const [k, t] of tensors) assert.ok(back.get(k)!.to('float64').allclose(t.to('float64'), 0, 0), k);
    // Records are 64-byte aligned as torch writes them (mmap-able).
    const zip = readFileSync(path);
    for (let off = zip.indexOf('PK\x03\x04'); off >= 0; off = zip.indexOf('PK\x03\x04', off + 4)) {
      const dataStart = off + 30 + zip.readUInt16LE(off + 26) + zip.readUInt16LE(off + 28);
      assert.equal(dataStart % 64, 0, `record at ${off} aligned`);
    }
    dispose([tensors, back]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moco export --format torchvision: torch.load + resnet18.load_state_dict(strict=True), same features', () => {
  const dir = tmpDir();
  try {
    const ckpt = join(dir, 'moco.pth.tar');
    interop('save-moco', 'resnet18', ckpt, 'legacy');
    const out = join(dir, 'r18.pth');
    execFileSync(
      process.execPath,
      [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'export', ckpt, '--format', 'torchvision', '--out', out],
      { stdio: 'pipe' },
    );
    manualSeed(2);
    const x = randn([2, 3, 48, 48]);
    saveSafetensors(join(dir, 'x.safetensors'), { x });
    interop('features', ckpt, join(dir, 'x.safetensors'), join(dir, 'a.safetensors'), 'resnet18', 'mlp');
    interop('features', out, join(dir, 'x.safetensors'), join(dir, 'b.safetensors'), 'resnet18');
    const a = loadSafetensors(join(dir, 'a.safetensors')).tensors.get('feat')!;
    const b = loadSafetensors(join(dir, 'b.safetensors')).tensors.get('feat')!;
    assertClose(b, a, 'exported vs original', { atol: 0, rtol: 0 });
    dispose([x, a, b]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moco export and convert take a run directory (its latest checkpoint), as knn/lincls/embed do', () => {
  const dir = tmpDir();
  try {
    const run = join(dir, 'run');
    mkdirSync(run);
    interop('save-moco', 'resnet18', join(run, 'checkpoint_0000002.pth.tar'), 'legacy');
    const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
    const fromDir = join(dir, 'dir.safetensors');
    const fromFile = join(dir, 'file.safetensors');
    execFileSync(process.execPath, [cli, 'export', run, '--format', 'safetensors', '--out', fromDir], {
      stdio: 'pipe',
    });
    execFileSync(
      process.execPath,
      [cli, 'export', join(run, 'checkpoint_0000002.pth.tar'), '--format', 'safetensors', '--out', fromFile],
      { stdio: 'pipe' },
    );
    execFileSync(process.execPath, [cli, 'convert', run, join(dir, 'converted.safetensors')], { stdio: 'pipe' });
    const a = loadSafetensors(fromDir).tensors;
    const b = loadSafetensors(fromFile).tensors;
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [k, t] of a) assertClose(t, b.get(k)!, k, { atol: 0, rtol: 0 });
    assert.ok(existsSync(join(dir, 'converted.safetensors')));
    dispose([...a.values(), ...b.values()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
