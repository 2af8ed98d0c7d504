// Tensor creation and data out: dtypes round-trip; seeded random streams equal PyTorch's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

test('typed arrays round-trip for every dtype', () => {
  const cases: [ArrayBufferView, torch.DType][] = [
    [new Float32Array([1.5, -2, 3]), 'float32'],
    [new Float64Array([1e-300, 2, 3]), 'float64'],
    [new BigInt64Array([1n, -(2n ** 40n), 3n]), 'int64'],
    [new Int32Array([1, -2, 3]), 'int32'],
    [new Uint8Array([0, 255, 7]), 'uint8'],
    [new Uint8Array([1, 0, 1]), 'bool'],
  ];
  for (const [arr, dt] of cases) {
    const t = torch.tensor(arr, { dtype: dt, shape: [3] });
    assert.equal(t.dtype, dt);
    assert.deepEqual(Array.from(t.data() as ArrayLike<unknown>), Array.from(arr as unknown as ArrayLike<unknown>));
  }
  const nested = torch.tensor(
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    { dtype: 'int64' },
  );
  assert.deepEqual(nested.shape, [2, 3]);
  assert.deepEqual(nested.toArray(), [1, 2, 3, 4, 5, 6]);
  assert.equal(torch.tensor([2.5]).item(), 2.5);
});

test('constructors match PyTorch, including seeded random streams', () => {
  torch.manualSeed(7);
  const mine = {
    randn: torch.randn([4, 5]),
    rand: torch.rand([6]),
    randint: torch.randint(3, 9, [7]),
    randperm: torch.randperm(10),
    arange: torch.arange(2, 11, 3),
    linspace: torch.linspace(-1, 1, 5),
    eye: torch.eye(3, 4),
    full: torch.full([2, 2], 0.25),
  };
  const ref = pytorch(`
torch.manual_seed(7)
O['randn'] = torch.randn(4, 5)
O['rand'] = torch.rand(6)
O['randint'] = torch.randint(3, 9, (7,))
O['randperm'] = torch.randperm(10)
O['arange'] = torch.arange(2, 11, 3)
O['linspace'] = torch.linspace(-1, 1, 5)
O['eye'] = torch.eye(3, 4)
O['full'] = torch.full((2, 2), 0.25)
`);
  for (const [k, v] of Object.entries(mine)) {
    assert.equal(v.dtype, ref[k]!.dtype, `${k} dtype`);
    assertClose(v, ref[k]!, k);
  }
});

test('RNG state saves and restores the stream', () => {
  torch.manualSeed(3);
  const s = torch.getRngState();
  const a = torch.randn([5]).toArray();
  torch.setRngState(s);
  assert.deepEqual(torch.randn([5]).toArray(), a);
});

test('dtype and device conversion', () => {
  const t = torch.tensor([1.7, -2.2]);
  assert.deepEqual(t.long().toArray(), [1, -2]);
  assert.equal(t.double().dtype, 'float64');
  assert.equal(t.to('cpu').device, 'cpu');
  assert.equal(typeof torch.cuda.isAvailable(), 'boolean');
  assert.ok(torch.getNumThreads() >= 1);
  assert.match(torch.version, /^\d+\.\d+/);
});

test('in-place ops used by optimizers', () => {
  const p = torch.tensor([1, 2, 3]);
  p.mul_(2)
    .add_(torch.tensor([1, 1, 1]), 0.5)
    .addcmul_(torch.tensor([1, 2, 3]), torch.tensor([2, 2, 2]), 0.5);
  assert.deepEqual(p.toArray(), [3.5, 6.5, 9.5]);
  p.zero_().fill_(4);
  assert.deepEqual(p.toArray(), [4, 4, 4]);
  const q = torch.tensor([0, 0, 0]);
  q.copy_(p);
  assert.deepEqual(q.toArray(), [4, 4, 4]);
  const list = [torch.ones([2]), torch.ones([3])];
  torch.foreachMul_(list, 0.9);
  torch.foreachAdd_(list, [torch.ones([2]), torch.ones([3])], 0.1);
  assert.ok(Math.abs(list[1]!.toArray()[0]! - 1) < 1e-6);
});

test('autograd: grad, retainGraph, detach, leaf', () => {
  const x = torch.tensor([1, 2, 3]).requiresGrad_(true);
  const y = x.mul(x).sum();
  y.backward(undefined, { retainGraph: true });
  assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
  y.backward();
  assert.deepEqual(x.grad!.toArray(), [4, 8, 12]);
  x.grad = null;
  assert.equal(x.grad, null);
  assert.equal(x.isLeaf, true);
  assert.equal(x.mul(2).isLeaf, false);
  assert.equal(x.mul(2).detach().requiresGrad, false);
  const z = x.mul(3);
  z.backward(torch.tensor([1, 0, 1]));
  assert.deepEqual(x.grad!.toArray(), [3, 0, 3]);
});
