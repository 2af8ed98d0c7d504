// Every bad input becomes a JS Error that names the op and says what is wrong; the process lives on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F, callOp } from '../../src/torch/index.js';

test('shape mismatch throws with libtorch message and op name', () => {
  const a = torch.zeros([2, 3]);
  assert.throws(() => a.mm(a), /aten::mm: mat1 and mat2 shapes cannot be multiplied \(2x3 and 2x3\)/);
  assert.throws(() => a.view(4, 2), /aten::view: shape '\[4, 2\]' is invalid for input of size 6/);
  assert.throws(
    () => F.conv2d(torch.zeros([1, 3, 8, 8]), torch.zeros([4, 2, 3, 3])),
    /aten::conv2d: .*expected input\[1, 3, 8, 8\] to have 2 channels/,
  );
});

test('wrong dtype throws', () => {
  const idx = torch.tensor([0.5, 1.5]);
  assert.throws(() => torch.zeros([3]).indexSelect(0, idx), /aten::index_select: .*int64/);
  const labels = torch.tensor([1, 2]);
  assert.throws(() => F.crossEntropy(torch.zeros([2, 4]), labels), /aten::cross_entropy_loss: .*(Long|Float)/);
});

test('CUDA unavailable is a clear error on a CPU build', { skip: torch.cuda.isAvailable() }, () => {
  assert.throws(() => torch.zeros([2]).to('cuda'), /CUDA is not available/);
  assert.throws(() => torch.zeros([2], { device: 'cuda' }), /aten::zeros: .*CUDA/);
});

test('use after dispose throws', () => {
  const a = torch.ones([2]);
  a.dispose();
  assert.equal(a.isDisposed, true);
  assert.throws(() => a.add(1), /used after dispose/);
  assert.throws(() => a.shape, /used after dispose/);
  a.dispose(); // idempotent
});

test('index out of range throws', () => {
  const a = torch.zeros([3, 4]);
  assert.throws(() => a.select(0, 7), /aten::select\.int: .*index 7 out of range/);
  assert.throws(
    () => a.indexSelect(0, torch.tensor([5], { dtype: 'int64' })),
    /aten::index_select: .*(out of range|index)/,
  );
  assert.throws(() => a.size(5), /dimension out of range/);
});

test('argument errors are caught before reaching libtorch', () => {
  assert.throws(() => callOp('aten::no_such_op', '', []), /unknown operator aten::no_such_op/);
  assert.throws(() => callOp('aten::add', 'Tensor', [torch.zeros([1])]), /missing argument 'other'/);
  assert.throws(() => callOp('aten::add', 'Tensor', [torch.zeros([1]), 'x']), /expected a Tensor/);
  assert.throws(
    () => torch.tensor(new Float32Array(5), { shape: [2, 3] }),
    /shape holds 6 elements of 4 bytes = 24 bytes, but the data has 20 bytes/,
  );
  assert.throws(() => torch.tensor([[1, 2], [3]]), /ragged/);
  assert.throws(() => torch.setNumThreads(0), /at least 1 thread/);
  assert.throws(() => F.dropout(torch.zeros([2]), 1.5), /p must be in \[0, 1\]/);
});

test('backward errors are JS errors', () => {
  const a = torch.ones([2]).requiresGrad_(true);
  assert.throws(() => a.mul(2).backward(), /backward: grad can be implicitly created only for scalar outputs/);
  const nograd = torch.ones([2]);
  assert.throws(() => nograd.sum().backward(), /does not require grad/);
  const y = a.mul(a).sum();
  y.backward();
  assert.throws(() => y.backward(), /backward: .*(second time|freed)/);
});

test('the process survives a burst of failures', () => {
  let failures = 0;
  for (let i = 0; i < 200; i++) {
    try {
      torch.zeros([(i % 5) + 1, 2]).mm(torch.zeros([3, 2]));
    } catch {
      failures++;
    }
  }
  assert.equal(failures, 200);
  assert.deepEqual(torch.ones([2, 2]).sum().item(), 4);
});
