// Reading torch.save files: both formats, every supported dtype, strided and offset views, shared storages,
// Parameters and plain Python values around them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadTorch, type PyValue } from '../../src/io/torch-pickle.js';
import { loadSafetensors } from '../../src/io/safetensors.js';
import { dispose, Tensor } from '../../src/torch/index.js';
import { python } from '../helpers/interop.js';
import { assertClose, repoRoot, tmpDir } from '../helpers/pytorch.js';

const MAKE = String.raw`
import sys, torch
sys.path.insert(0, sys.argv[1])
from st import save
torch.manual_seed(0)
base = torch.arange(60, dtype=torch.float64).reshape(3, 4, 5)
shared = torch.randn(2, 3)
obj = {
    'f32_t': torch.randn(4, 6).t(),
    'f64_slice': base[1:, ::2, 1:4],
    'f16': torch.randn(5).half(),
    'bf16': torch.randn(3, 2).bfloat16(),
    'i64': torch.tensor([-(2 ** 40), 3, 7]),
    'i32': torch.tensor([-5, 6], dtype=torch.int32),
    'i16': torch.tensor([-300, 2], dtype=torch.int16),
    'i8': torch.tensor([-3, 4], dtype=torch.int8),
    'u8': torch.tensor([0, 255, 7], dtype=torch.uint8),
    'b': torch.tensor([True, False, True]),
    'param': torch.nn.Parameter(torch.randn(2, 2)),
    'scalar': torch.tensor(3.5),
    'empty': torch.zeros(0, 3),
    'view_a': shared[0],
    'view_b': shared[1, 1:],
    'expanded': torch.randn(3, 1).expand(3, 4),
}
meta = {'epoch': 5, 'list': [1, (2, 'x')], 'none': None, 'lr': 0.03}
torch.save({'tensors': obj, 'meta': meta}, sys.argv[2])
torch.save({'tensors': obj, 'meta': meta}, sys.argv[3], _use_new_zipfile_serialization=False)
save({k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()) for k, v in obj.items()}, sys.argv[4])
`;

test('torch.save files (zip and legacy) load with every dtype, stride and offset', () => {
  const dir = tmpDir();
  try {
    const [zip, legacy, expected] = ['z.pth', 'l.pth', 'e.safetensors'].map((f) => join(dir, f));
    python(MAKE, [join(repoRoot(), 'test', 'py'), zip!, legacy!, expected!]);
    const exp = loadSafetensors(expected!).tensors;
    for (const path of [zip!, legacy!]) {
      const root = loadTorch(path) as Map<string, PyValue>;
      const tensors = root.get('tensors') as Map<string, PyValue>;
      assert.deepEqual([...tensors.keys()].sort(), [...exp.keys()].sort());
      for (const [k, want] of exp) {
        const got = tensors.get(k);
        assert.ok(got instanceof Tensor, `${path} ${k}`);
        assert.ok(got.isContiguous(), `${k} is compact`);
        const cmp = got.dtype === 'bfloat16' ? got.float() : got;
        assert.equal(cmp.dtype, want.dtype, `${k} dtype`);
        if (want.dtype === 'int64') assert.deepEqual(cmp.data(), want.data(), k);
        else assertClose(cmp.to('float64'), want.to('float64'), `${path} ${k}`, { atol: 0, rtol: 0 });
      }
      assert.equal((tensors.get('bf16') as Tensor).dtype, 'bfloat16');
      assert.equal((tensors.get('f16') as Tensor).dtype, 'float16');
      const meta = root.get('meta') as Map<string, PyValue>;
      assert.equal(meta.get('epoch'), 5);
      assert.equal(meta.get('lr'), 0.03);
      assert.equal(meta.get('none'), null);
      assert.deepEqual(meta.get('list'), [1, [2, 'x']]);
      dispose(tensors);
    }
    dispose(exp);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('corrupt and foreign files give clear errors', () => {
  const dir = tmpDir();
  try {
    python(
      String.raw`
import sys, torch, zipfile
torch.save({'a': torch.ones(3)}, sys.argv[1] + '/ok.pth')
src = zipfile.ZipFile(sys.argv[1] + '/ok.pth')
with zipfile.ZipFile(sys.argv[1] + '/nodata.pth', 'w') as z:
    for n in src.namelist():
        if '/data/' not in n: z.writestr(n, src.read(n))
open(sys.argv[1] + '/text.pth', 'w').write('hello')
with open(sys.argv[1] + '/ok.pth', 'rb') as f: b = f.read()
open(sys.argv[1] + '/trunc.pth', 'wb').write(b[:len(b) // 2])
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), sys.argv[1] + '/script.pt')
`,
      [dir],
    );
    assert.throws(() => loadTorch(join(dir, 'nodata.pth')), /storage record 'ok\/data\/0' is missing/);
    assert.throws(() => loadTorch(join(dir, 'text.pth')), /not a PyTorch checkpoint/);
    assert.throws(() => loadTorch(join(dir, 'trunc.pth')), /trunc\.pth: /);
    assert.throws(() => loadTorch(join(dir, 'script.pt')), /TorchScript archive/);
    assert.throws(() => loadTorch(join(dir, 'missing.pth')), /cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
