// The GPU check that scripts/gpu-check runs after building the addon against the machine's CUDA PyTorch:
//   1. op parity, CPU vs the device: values and gradients of the op families the models use;
//   2. one MoCo training step on the device against the same step on the CPU (same weights, views, permutation);
//   3. a one-process NCCL group: all-reduce, all-gather, broadcast on device tensors;
//   4. a short CIFAR-10 pre-training benchmark, ours vs ../shared/peer/torch_moco.py on the same device (images/s
//      end to end, ResNet-18 CIFAR stem, batch 512), in fp32 and with bf16 autocast.
// Prints one JSON line. `--device cpu --backend gloo` runs every part with the CPU standing in for the GPU, to check
// this program itself where no GPU is lent (the comparisons are then trivially tight).
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { F, Tensor, buildInfo, cuda, einsum, manualSeed, randn, randperm, tensor, tidy } from '../src/torch/index.js';
import { MoCo } from '../src/moco/index.js';
import { SGD } from '../src/optim/index.js';
import { ProcessGroup, useDevice, type Backend } from '../src/dist/index.js';
import { lastJson, round, runMeasured } from './common.js';

const { values: a } = parseArgs({
  options: {
    device: { type: 'string', default: 'cuda:0' },
    backend: { type: 'string', default: 'nccl' },
    python: { type: 'string', default: process.env.PYTHON ?? 'python3' },
    data: { type: 'string', default: '../shared/datasets/cifar10' },
    peer: { type: 'string', default: '../shared/peer/torch_moco.py' },
    steps: { type: 'string', default: '30' },
    'batch-size': { type: 'string', default: '512' },
    'skip-bench': { type: 'boolean', default: false },
  },
});
const dev = a.device!;
const onGpu = dev.startsWith('cuda');
if (onGpu && !cuda.isAvailable()) {
  console.error(
    `gpu-check: --device ${dev} but this addon sees no CUDA device (libtorch ${buildInfo().torch}, CUDA build: ${buildInfo().cuda})`,
  );
  process.exit(2);
}
useDevice(dev);

/** max |a − b| / max(|b|, 1e-12): one relative figure per tensor. */
function relErr(x: Tensor, ref: Tensor): number {
  return tidy(() => {
    const d = x.cpu().float().sub(ref.cpu().float()).abs().max().item();
    return d / Math.max(ref.cpu().float().abs().max().item(), 1e-12);
  });
}

// TF32: cuDNN convolutions use TF32 by default on Ampere and newer (torch.backends.cudnn.allow_tf32 = True), with a
// 10-bit mantissa, i.e. ~1e-3 relative per product; matmuls stay fp32 (allow_tf32 for matmul is False by default).
const TOL = { conv: 5e-3, matmul: 1e-4, elementwise: 1e-5, reduction: 1e-4 };

interface OpCase {
  name: string;
  kind: keyof typeof TOL;
  inputs: number[][];
  fn: (xs: Tensor[]) => Tensor;
}
const ops: OpCase[] = [
  {
    name: 'conv2d 3x3',
    kind: 'conv',
    inputs: [
      [8, 16, 16, 16],
      [32, 16, 3, 3],
    ],
    fn: ([x, w]) => F.conv2d(x!, w!, null, { padding: 1 }),
  },
  {
    name: 'conv2d 3x3 stride 2',
    kind: 'conv',
    inputs: [
      [8, 16, 16, 16],
      [32, 16, 3, 3],
    ],
    fn: ([x, w]) => F.conv2d(x!, w!, null, { stride: 2, padding: 1 }),
  },
  {
    name: 'conv2d 1x1',
    kind: 'conv',
    inputs: [
      [8, 16, 16, 16],
      [32, 16, 1, 1],
    ],
    fn: ([x, w]) => F.conv2d(x!, w!),
  },
  {
    name: 'batch_norm (train)',
    kind: 'reduction',
    inputs: [[8, 16, 8, 8], [16], [16]],
    fn: ([x, g, b]) => F.batchNorm(x!, null, null, g!, b!, { training: true }),
  },
  { name: 'relu', kind: 'elementwise', inputs: [[8, 16, 8, 8]], fn: ([x]) => F.relu(x!) },
  {
    name: 'max_pool2d',
    kind: 'elementwise',
    inputs: [[8, 16, 8, 8]],
    fn: ([x]) => F.maxPool2d(x!, 3, { stride: 2, padding: 1 }),
  },
  { name: 'adaptive_avg_pool2d', kind: 'reduction', inputs: [[8, 16, 8, 8]], fn: ([x]) => F.adaptiveAvgPool2d(x!, 1) },
  { name: 'linear', kind: 'matmul', inputs: [[64, 128], [32, 128], [32]], fn: ([x, w, b]) => F.linear(x!, w!, b!) },
  {
    name: 'einsum nc,ck->nk',
    kind: 'matmul',
    inputs: [
      [64, 32],
      [32, 256],
    ],
    fn: ([q, k]) => einsum('nc,ck->nk', q!, k!),
  },
  { name: 'normalize', kind: 'elementwise', inputs: [[64, 32]], fn: ([x]) => F.normalize(x!, { dim: 1 }) },
  {
    name: 'cross_entropy',
    kind: 'reduction',
    inputs: [[64, 257]],
    fn: ([x]) =>
      F.crossEntropy(
        x!,
        tensor(
          Array.from({ length: 64 }, (_, i) => i % 257),
          { dtype: 'int64' },
        ).to(x!.device),
      ),
  },
];

function opParity(): { name: string; value: number; grads: number[]; tol: number; ok: boolean }[] {
  return ops.map((c) =>
    tidy(() => {
      manualSeed(1);
      const cpuIn = c.inputs.map((s) => randn(s).requiresGrad_(true));
      const devIn = cpuIn.map((t) => t.detach().to(dev).requiresGrad_(true));
      const yc = c.fn(cpuIn);
      const yd = c.fn(devIn);
      manualSeed(2);
      const g = randn(yc.shape);
      yc.backward(g);
      yd.backward(g.to(dev));
      const value = relErr(yd, yc);
      const grads = cpuIn.map((t, i) => relErr(devIn[i]!.grad!, t.grad!));
      const tol = TOL[c.kind];
      return {
        name: c.name,
        value: round(value, 8),
        grads: grads.map((x) => round(x, 8)),
        tol,
        ok: value <= tol && grads.every((x) => x <= tol * 10),
      };
    }),
  );
}

/** One MoCo v2 step (ResNet-18 CIFAR stem, SplitBN, MLP head) on the CPU and on the device from the same state. */
function mocoStep(): { loss: number; lossDevice: number; maxParamRelErr: number; queueRelErr: number; ok: boolean } {
  return tidy(() => {
    manualSeed(0);
    const o = {
      arch: 'resnet18',
      cifarStem: true,
      width: 16,
      dim: 128,
      K: 1024,
      m: 0.99,
      T: 0.2,
      head: 'mlp' as const,
      bnSplits: 4,
    };
    const cpuM = new MoCo(o);
    const devM = new MoCo(o);
    devM.loadStateDict(cpuM.stateDict());
    devM.to(dev);
    const xq = randn([32, 3, 32, 32]);
    const xk = randn([32, 3, 32, 32]);
    const perm = randperm(32);
    const run = (m: MoCo, d: string): number => {
      const opt = new SGD(m.trainableParameters(), { lr: 0.06, momentum: 0.9, weightDecay: 5e-4 });
      const out = m.forwardPair(xq.to(d), xk.to(d), { keyPerm: perm.to(d) });
      opt.zeroGrad();
      out.loss.backward();
      opt.step();
      const l = out.loss.item();
      opt.dispose();
      return l;
    };
    const loss = run(cpuM, 'cpu');
    const lossDevice = run(devM, dev);
    const a1 = cpuM.stateDict();
    const b1 = devM.stateDict();
    let maxParamRelErr = 0;
    for (const [k, v] of a1)
      if (v.dtype === 'float32' && k !== 'queue') maxParamRelErr = Math.max(maxParamRelErr, relErr(b1.get(k)!, v));
    const queueRelErr = relErr(b1.get('queue')!, a1.get('queue')!);
    cpuM.dispose();
    devM.dispose();
    return {
      loss: round(loss, 6),
      lossDevice: round(lossDevice, 6),
      maxParamRelErr: round(maxParamRelErr, 8),
      queueRelErr: round(queueRelErr, 8),
      ok: Math.abs(loss - lossDevice) < 1e-2 * Math.abs(loss) && maxParamRelErr < 1e-2,
    };
  });
}

async function collectives(): Promise<{ backend: string; allReduce: boolean; allGather: boolean; broadcast: boolean }> {
  const pg = await ProcessGroup.init({
    backend: a.backend as Backend,
    rank: 0,
    worldSize: 1,
    masterPort: 29650 + Math.floor(Math.random() * 200),
    timeoutMs: 60_000,
  });
  try {
    const x = tensor([1, 2, 3]).to(dev);
    await pg.allReduce(x, 'sum');
    const allReduce = x.cpu().toArray().join() === '1,2,3';
    const g = await pg.allGather(tensor([4, 5]).to(dev));
    const allGather = g.length === 1 && g[0]!.cpu().toArray().join() === '4,5';
    const b = tensor([6, 7]).to(dev);
    await pg.broadcast(b, 0);
    const broadcast = b.cpu().toArray().join() === '6,7';
    return { backend: a.backend!, allReduce, allGather, broadcast };
  } finally {
    await pg.close();
  }
}

interface PeerJson {
  images_per_s: number;
  torch: string;
  last_loss: number;
}
interface OursJson {
  imagesPerSec: number;
  lastLoss: number;
}

/** Ours and the peer on the same device and data, fp32 then bf16 autocast. */
async function bench(): Promise<Record<string, unknown>> {
  const steps = a.steps!;
  const batch = a['batch-size']!;
  const out: Record<string, unknown> = {};
  for (const amp of ['off', 'bf16'] as const) {
    const ours = await runMeasured(process.execPath, [
      join('dist', 'src', 'cli', 'main.js'),
      'pretrain',
      a.data!,
      '--preset',
      'cifar',
      '--batch-size',
      batch,
      '--max-steps',
      steps,
      '--device',
      dev,
      '--knn-every',
      '0',
      '--quiet',
      '--out',
      `/tmp/gpu-check-run-${amp}`,
      ...(amp === 'bf16' ? ['--amp', 'bf16'] : []),
    ]);
    const peer = await runMeasured(a.python!, [
      'bench/py/peer_on_device.py',
      a.peer!,
      '--device',
      dev,
      '--amp',
      amp,
      '--',
      a.data!,
      '--cifar-stem',
      '--batch-size',
      batch,
      '--max-steps',
      steps,
      '--workers',
      '8',
      '--threads',
      '8',
    ]);
    const o = ours.code === 0 ? lastJson<OursJson>(ours.stdout, 'ours') : null;
    const p = peer.code === 0 ? lastJson<PeerJson>(peer.stdout, 'peer') : null;
    out[amp === 'off' ? 'fp32' : 'bf16'] = {
      oursImagesPerSec: o ? round(o.imagesPerSec, 1) : null,
      peerImagesPerSec: p ? round(p.images_per_s, 1) : null,
      ratio: o && p ? round(o.imagesPerSec / p.images_per_s, 3) : null,
      peerTorch: p?.torch,
      ...(o ? {} : { oursError: ours.stderr.slice(-800) }),
      ...(p ? {} : { peerError: peer.stderr.slice(-800) }),
    };
  }
  return out;
}

const parity = opParity();
const step = mocoStep();
const coll = await collectives();
const perf = a['skip-bench'] ? null : await bench();
const ok = parity.every((p) => p.ok) && step.ok && coll.allReduce && coll.allGather && coll.broadcast;
console.log(
  JSON.stringify({
    bench: 'gpu-check',
    device: dev,
    torch: buildInfo().torch,
    cudaBuild: buildInfo().cuda,
    ok,
    tolerance:
      'relative to the max |value|: TF32 convolutions 5e-3 (cuDNN default), fp32 matmuls 1e-4, elementwise 1e-5, reductions 1e-4; gradients 10x',
    opParity: parity,
    mocoStep: step,
    collectives: coll,
    ...(onGpu ? { cudaMemory: cuda.memory(Number(dev.split(':')[1] ?? 0)) } : {}),
    ...(perf ? { cifarPretrain: perf } : {}),
  }),
);
process.exit(ok ? 0 : 1);
