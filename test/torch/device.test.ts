// Devices and precision: autocast against torch.autocast, per-device generator state, host/device memory
// accounting, channels-last modules, and the clear errors of CUDA calls on a CPU build.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { F } from '../../src/torch/index.js';
import { createModel } from '../../src/models/index.js';
import { processDevice, useDevice } from '../../src/dist/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

test('CPU autocast in bfloat16 computes what torch.autocast does: low-precision convs and matmuls, float32 losses', () => {
  torch.manualSeed(3);
  const x = torch.randn([4, 3, 8, 8]);
  const w = torch.randn([5, 3, 3, 3]).mul(0.2);
  const lw = torch.randn([7, 5]).mul(0.3);
  const target = torch.tensor([0, 3, 6, 1], { dtype: 'int64' });
  const out = torch.autocast('cpu', () => {
    const y = F.conv2d(x, w, null, { padding: 1 });
    const logits = F.linear(y.mean({ dim: [2, 3] }), lw);
    const loss = F.crossEntropy(logits, target);
    return {
      y: y.float(),
      yDtype: y.dtype,
      logits: logits.float(),
      logitsDtype: logits.dtype,
      loss,
      lossDtype: loss.dtype,
    };
  });
  assert.equal(out.yDtype, 'bfloat16');
  assert.equal(out.logitsDtype, 'bfloat16');
  assert.equal(out.lossDtype, 'float32');
  // Outside the region everything is float32 again.
  assert.equal(F.conv2d(x, w).dtype, 'float32');
  const ref = pytorch(
    `
with torch.autocast('cpu', dtype=torch.bfloat16):
    y = F.conv2d(x, w, padding=1)
    logits = F.linear(y.mean(dim=(2, 3)), lw)
    loss = F.cross_entropy(logits, target)
O['y'] = y.float(); O['logits'] = logits.float(); O['loss'] = loss.float().reshape(1)
`,
    { x, w, lw, target },
  );
  // Same kernels on the same bf16-rounded inputs: bf16 output rounding is the only slack.
  assertClose(out.y, ref.y!, 'autocast conv2d', { rtol: 1e-2, atol: 1e-2 });
  assertClose(out.logits, ref.logits!, 'autocast linear', { rtol: 1e-2, atol: 1e-2 });
  assertClose(out.loss.reshape(1), ref.loss!, 'autocast cross-entropy', { rtol: 1e-3, atol: 1e-3 });
});

test('autocast regions nest and restore the outer state; a Promise-returning region is refused', () => {
  const x = torch.randn([2, 4]);
  const w = torch.randn([3, 4]);
  torch.autocast('cpu', () => {
    torch.autocast('cpu', () => assert.equal(F.linear(x, w).dtype, 'bfloat16'));
    assert.equal(F.linear(x, w).dtype, 'bfloat16', 'still inside the outer region');
  });
  assert.equal(F.linear(x, w).dtype, 'float32');
  assert.throws(() => torch.autocast('cpu', () => Promise.resolve(1)), /synchronous/);
  assert.equal(F.linear(x, w).dtype, 'float32', 'a refused region leaves autocast off');
  assert.throws(() => torch.autocast('tpu' as 'cpu', () => 1), /'cpu' or 'cuda'/);
  assert.ok(Array.isArray(torch.cpuBf16Features()));
});

test('the CPU generator state through the per-device API resumes the same stream as getRngState', () => {
  torch.manualSeed(11);
  const s = torch.getGeneratorState('cpu');
  assert.deepEqual(Array.from(s.data() as Uint8Array), Array.from(torch.getRngState().data() as Uint8Array));
  const a = torch.randn([5]).toArray();
  torch.setGeneratorState('cpu', s);
  assert.deepEqual(torch.randn([5]).toArray(), a);
  assert.throws(() => torch.getGeneratorState('gpu:0'), /getGeneratorState/);
});

test('host bytes and CUDA bytes are counted apart; CUDA calls on a CPU build fail with a message', () => {
  const before = torch.memory();
  assert.equal(typeof before.cudaBytes, 'number');
  const t = torch.zeros([1024, 256]);
  assert.equal(torch.memory().bytes - before.bytes, 1024 * 256 * 4);
  assert.equal(torch.memory().cudaBytes, before.cudaBytes);
  t.dispose();
  if (torch.cuda.isAvailable()) return;
  assert.throws(() => torch.cuda.setDevice(0), /has 0 CUDA device/);
  assert.throws(() => torch.cuda.memory(0), /no CUDA/);
  assert.throws(() => useDevice('cuda:1'), /--device cuda:1: CUDA is not available/);
  useDevice('cpu');
});

test('one GPU per process: cuda means cuda:LOCAL_RANK in multi-process runs', () => {
  assert.equal(processDevice('cuda', { localRank: 3, worldSize: 8 }), 'cuda:3');
  assert.equal(processDevice('cuda:0', { localRank: 2, worldSize: 4 }), 'cuda:2');
  assert.equal(processDevice('cuda:1', null), 'cuda:1');
  assert.equal(processDevice('cuda', { localRank: 0, worldSize: 1 }), 'cuda');
  assert.equal(processDevice('cpu', { localRank: 1, worldSize: 2 }), 'cpu');
});

test('a channels-last ResNet computes the same outputs and gradients as the contiguous one', () => {
  torch.manualSeed(5);
  const a = createModel('resnet18', { numClasses: 10, cifarStem: true, width: 8 });
  const b = createModel('resnet18', { numClasses: 10, cifarStem: true, width: 8 });
  b.loadStateDict(a.stateDict());
  b.toMemoryFormat('channelsLast');
  const convW = b.parameters().find((p) => p.dim() === 4)!;
  assert.ok(convW.isContiguous('channelsLast') && !convW.isContiguous());
  const x = torch.randn([4, 3, 16, 16]);
  const ya = a.forward(x);
  const yb = b.forward(x.contiguous('channelsLast'));
  assertClose(yb, ya, 'channels-last forward', { rtol: 1e-4, atol: 1e-5 });
  ya.sum().backward();
  yb.sum().backward();
  const [ga, gb] = [a.parameters()[0]!.grad!, b.parameters()[0]!.grad!];
  assertClose(gb.contiguous(), ga, 'channels-last conv1 gradient', { rtol: 1e-3, atol: 1e-4 });
});
