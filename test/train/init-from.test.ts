// moco pretrain --init-from: a new run whose encoders start from an official MoCo v2 checkpoint (written by
// PyTorch), a torchvision state dict or our own run; a backbone of another shape is refused; and starting from a
// trained checkpoint beats starting from scratch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { F, Tensor, manualSeed, noGrad, tensor, tidy } from '../../src/torch/index.js';
import { createModel } from '../../src/models/index.js';
import { createOptimizer } from '../../src/optim/index.js';
import { CIFAR_MEAN, CIFAR_STD, openDataset, type MemoryDataset } from '../../src/data/index.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { mechanismOf, pretrain, readCheckpoint, resolveConfig, type ConfigOverrides } from '../../src/train/index.js';
import type { PretrainContext, TrainObserver } from '../../src/train/index.js';
import { pytorch, tmpDir } from '../helpers/pytorch.js';
import { disposeInitSource, initEncoders, readInitSource } from '../../src/train/init-from.js';
import { tinyRun } from '../helpers/tiny-run.js';

const TINY = tinyRun({ imageSize: 16, K: 128, maxSteps: 1, threads: 1, seed: 5, epochs: undefined });
const DATA = 'synthetic:64';

/** The run's state before its first step: every tensor of the mechanism and of the optimizer, copied. */
interface Start {
  model: Map<string, Tensor>;
  optimizer: number;
  step: number;
  epoch: number;
}

function startHook(into: Start[]): TrainObserver {
  return {
    start(ctx: PretrainContext) {
      const model = new Map([...ctx.model.stateDict()].map(([k, t]) => [k, t.detach().clone()]));
      into.push({ model, optimizer: ctx.optimizer.stateTensors().tensors.size, ...ctx.state });
    },
  };
}

/** Runs `over` and returns the state before its first step, the run directory and what it wrote on stderr. */
async function run(over: ConfigOverrides): Promise<{ start: Start; out: string; stderr: string }> {
  const out = tmpDir();
  const starts: Start[] = [];
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    await pretrain(resolveConfig(DATA, { ...TINY, ...over, out }), { quiet: true, observers: [startHook(starts)] });
  } finally {
    process.stderr.write = write;
  }
  return { start: starts[0]!, out, stderr };
}

function assertEqual(a: Tensor, b: Tensor, name: string): void {
  assert.deepEqual(a.shape, b.shape, `${name}: shape`);
  assert.equal(a.eq(b.to(a.dtype)).all().item(), 1, `${name} differs`);
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

test('an official MoCo v2 checkpoint and a torchvision state dict, both written by PyTorch, start a new run', async () => {
  // The query encoder's names and shapes (MLP head), from a run's own mechanism; PyTorch writes its own values
  // under them, as main_moco.py and torchvision save them.
  const mlp = mechanismOf(resolveConfig(DATA, { ...TINY, mlp: true, out: tmpDir() }), 64);
  const names = Object.fromEntries(mlp.encoderQ.stateDict());
  const dir = tmpDir();
  const v2 = join(dir, 'moco_v2.pth.tar');
  const tv = join(dir, 'resnet18_tv.pth');
  const ref = pytorch(
    `
from collections import OrderedDict
g = torch.Generator().manual_seed(7)
def values(shift):
    out = OrderedDict()
    for n, t in I.items():
        if t.dtype == torch.int64:
            out[n] = torch.tensor(40 + shift)
        elif n.endswith('running_var'):
            out[n] = torch.rand(t.shape, generator=g) + 0.5
        else:
            out[n] = torch.randn(t.shape, generator=g) * 0.1
    return out
q, k = values(0), values(1)
sd = OrderedDict([('module.encoder_q.' + n, t) for n, t in q.items()] + [('module.encoder_k.' + n, t) for n, t in k.items()])
sd['module.queue'] = F.normalize(torch.randn(128, 4096, generator=g), dim=0)
sd['module.queue_ptr'] = torch.zeros(1, dtype=torch.long)
params = [t.clone().requires_grad_() for n, t in q.items() if t.dtype == torch.float32 and 'running' not in n]
opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=1e-4)
for p in params:
    p.grad = torch.randn_like(p)
opt.step()
torch.save({'epoch': 200, 'arch': 'resnet18', 'state_dict': sd, 'optimizer': opt.state_dict()}, ${JSON.stringify(v2)})
tv = OrderedDict([(n, t) for n, t in values(2).items() if not n.startswith('fc.')])
tv['fc.weight'] = torch.randn(1000, 64, generator=g) * 0.01
tv['fc.bias'] = torch.zeros(1000)
torch.save(tv, ${JSON.stringify(tv)})
for n, t in q.items():
    O['q.' + n] = t
for n, t in tv.items():
    O['tv.' + n] = t
`,
    names,
  );
  mlp.dispose();

  // (a) MoCo v2 into an MLP-head run: both encoders are the checkpoint's query encoder; the queue, its pointer and
  // the optimizer are a new run's (the same as the run from scratch with the same seed).
  const scratch = await run({ mlp: true });
  const a = await run({ mlp: true, initFrom: v2 });
  assert.equal(a.start.step, 0);
  assert.equal(a.start.epoch, 0);
  assert.equal(a.start.optimizer, 0, 'no optimizer state before the first step');
  let n = 0;
  for (const [k, t] of a.start.model) {
    const m = /^encoder_[qk]\.(.*)$/.exec(k);
    if (m) {
      assertEqual(t, ref[`q.${m[1]}`]!, k);
      n++;
    } else assertEqual(t, scratch.start.model.get(k)!, `${k} (fresh)`);
  }
  assert.equal(n, 2 * Object.keys(names).length);
  assert.equal(a.stderr, '', 'the MLP head loads: nothing to say');
  const config = JSON.parse(readFileSync(join(a.out, 'config.json'), 'utf8')) as { initFrom: string };
  assert.equal(config.initFrom, `${v2}@sha256:${sha256(v2)}`);
  const scratchConfig = JSON.parse(readFileSync(join(scratch.out, 'config.json'), 'utf8')) as object;
  assert.ok(!('initFrom' in scratchConfig), 'a run from scratch records no initFrom');

  // (b) torchvision: the backbone loads, the 1000-way classifier does not; the run's fc (128-d) is the fresh one.
  const scratchFc = await run({});
  const b = await run({ initFrom: tv });
  for (const [k, t] of b.start.model) {
    const m = /^encoder_[qk]\.(.*)$/.exec(k);
    if (m && !m[1]!.startsWith('fc.')) assertEqual(t, ref[`tv.${m[1]}`]!, k);
    else assertEqual(t, scratchFc.start.model.get(k)!, `${k} (fresh)`);
  }
  const lines = b.stderr.trim().split('\n');
  assert.equal(lines.length, 1, b.stderr);
  assert.match(
    lines[0]!,
    /--init-from .*resnet18_tv\.pth has a classifier fc \(\[1000, 64\]\), not a projection head: the run's projection head starts from random weights/,
  );

  // The recorded FILE@sha256:HEX starts the same run again, and refuses a file that changed since.
  const again = await run({ mlp: true, initFrom: config.initFrom });
  for (const [k, t] of a.start.model) assertEqual(again.start.model.get(k)!, t, k);
  await assert.rejects(
    run({ initFrom: `${tv}@sha256:${sha256(v2)}` }),
    /--init-from .*: .*resnet18_tv\.pth now has SHA-256 [0-9a-f]{64}, not the [0-9a-f]{64} recorded/,
  );
  for (const s of [scratch, a, scratchFc, b, again]) for (const t of s.start.model.values()) t.dispose();
});

test('a backbone of another shape is refused before training, naming the first differing tensor', async () => {
  const dir = tmpDir();
  const cases: [string, { width: number; cifarStem: boolean }, RegExp][] = [
    [
      'wide.safetensors',
      { width: 16, cifarStem: true },
      /conv1\.weight, \[16, 3, 3, 3\] in the checkpoint, \[8, 3, 3, 3\] in the run/,
    ],
    [
      'imagenet-stem.safetensors',
      { width: 8, cifarStem: false },
      /conv1\.weight, \[8, 3, 7, 7\] in the checkpoint, \[8, 3, 3, 3\] in the run/,
    ],
  ];
  for (const [name, o, shapes] of cases) {
    const m = createModel('resnet18', o);
    const file = join(dir, name);
    saveSafetensors(file, m.stateDict());
    m.dispose();
    const out = tmpDir();
    await assert.rejects(
      pretrain(resolveConfig(DATA, { ...TINY, initFrom: file, out }), { quiet: true }),
      (e: Error) => {
        assert.match(e.message, new RegExp(`^--init-from ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
        assert.match(e.message, /this run's resnet18 \(CIFAR stem\) width 8: the first differing tensor is /);
        assert.match(e.message, shapes);
        return true;
      },
    );
  }
});

test('a run directory of ours: both encoders and the projection head start from its newest checkpoint', async () => {
  const first = await run({ maxSteps: 2 });
  const resume = readCheckpoint(first.out);
  const next = await run({ initFrom: first.out, seed: 6 });
  assert.equal(next.stderr, '');
  for (const [k, t] of next.start.model) {
    const m = /^encoder_[qk]\.(.*)$/.exec(k);
    if (m) assertEqual(t, resume.tensors.get(`encoder_q.${m[1]}`)!, k);
  }
  const config = JSON.parse(readFileSync(join(next.out, 'config.json'), 'utf8')) as { initFrom: string };
  assert.equal(config.initFrom, `${resume.file}@sha256:${sha256(resume.file)}`);

  // With --resume: refused, saying why.
  await assert.rejects(
    pretrain(resolveConfig('', { initFrom: first.out, maxSteps: 3 }, resume.config), { quiet: true, resume }),
    /--init-from .* with --resume .*: a resumed run continues from its own checkpoint .* drop --init-from to continue the run, or drop --resume/,
  );
  for (const t of resume.tensors.values()) t.dispose();
  for (const s of [first, next]) for (const t of s.start.model.values()) t.dispose();
});

test('MoCo v3: the base encoder takes the backbone, the momentum encoder is its copy, the predictor is fresh', () => {
  const v3: ConfigOverrides = { ...TINY, preset: 'mocov3-cifar', bnSplits: 1, dim: 16, mlpDim: 32, out: tmpDir() };
  const c = resolveConfig(DATA, v3);
  manualSeed(1);
  const trained = mechanismOf(c, 64);
  // As the official main_moco.py saves it (DataParallel's module. prefix), in a safetensors file.
  const file = join(tmpDir(), 'mocov3.safetensors');
  saveSafetensors(file, new Map([...trained.stateDict()].map(([k, t]) => [`module.${k}`, t])));
  manualSeed(2);
  const run = mechanismOf(c, 64);
  const predictor = new Map(
    [...run.stateDict()].filter(([k]) => k.startsWith('predictor.')).map(([k, t]) => [k, t.clone()]),
  );
  const notes: string[] = [];
  const src = readInitSource(file);
  initEncoders(run, src, c, (l) => notes.push(l));
  disposeInitSource(src);
  const own = run.stateDict();
  const theirs = trained.stateDict();
  for (const [k, t] of own) {
    const base = k.replace(/^momentum_encoder\./, 'base_encoder.');
    if (k.startsWith('predictor.')) assertEqual(t, predictor.get(k)!, `${k} (fresh)`);
    else if (k.startsWith('momentum_encoder.')) assertEqual(t, own.get(base)!, `${k} = ${base}`);
    else if (!k.startsWith('base_encoder.fc.')) assertEqual(t, theirs.get(k)!, k);
  }
  assert.deepEqual(notes.length, 1);
  assert.match(notes[0]!, /is a MoCo v3 checkpoint, of which only the base encoder's backbone is read/);
  for (const t of predictor.values()) t.dispose();
  trained.dispose();
  run.dispose();
});

/**
 * A trained checkpoint, quickly: `steps` supervised SGD steps of a CIFAR-stem ResNet-18 of width 8 on the
 * synthetic training images (2×2-averaged to 16 px, CIFAR mean/std), saved as a torchvision-layout state dict with
 * its 10-way classifier — what ImageNet weights are to a real run. A few dozen MoCo steps do not yet move the
 * kNN monitor at this size (README's run needs ~800), supervised ones do.
 */
function supervisedCheckpoint(file: string, data: string, steps: number): void {
  manualSeed(0);
  const ds = openDataset(data, { split: 'train' }) as MemoryDataset;
  const model = createModel('resnet18', { cifarStem: true, width: 8, numClasses: 10 });
  const opt = createOptimizer('sgd', model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  const mean = tensor(Float32Array.from(CIFAR_MEAN)).view(1, 3, 1, 1);
  const std = tensor(Float32Array.from(CIFAR_STD)).view(1, 3, 1, 1);
  const x = tidy(() => F.avgPool2d(ds.images.float().div(255), 2).sub(mean).div(std));
  const y = tensor(Int32Array.from(ds.labels!)).long();
  const n = ds.length;
  const batch = 64;
  // A seeded shuffle, so that the checkpoint is the same on every run of the test.
  let order: number[] = [];
  let r = 1;
  const random = (): number => (r = (r * 16807) % 2147483647) / 2147483647;
  for (let step = 0; step < steps; step++) {
    if (order.length < batch) order = [...order, ...[...Array(n).keys()].sort(() => random() - 0.5)];
    const idx = tensor(Int32Array.from(order.splice(0, batch))).long();
    tidy(() => {
      opt.zeroGrad();
      F.crossEntropy(model.forward(x.indexSelect(0, idx)), y.indexSelect(0, idx)).backward();
      opt.step();
    });
    idx.dispose();
  }
  noGrad(() => saveSafetensors(file, model.stateDict()));
  for (const t of [x, y, mean, std]) t.dispose();
  opt.dispose();
  model.dispose();
  ds.dispose();
}

test('starting from a trained checkpoint, a run is ahead of the same run from scratch (kNN monitor)', async () => {
  // Seeds 1, 2, 3 while developing: 42, 42, 29% against 17, 23, 15% from scratch (the supervised weights alone:
  // 38, 38, 29%). The lower lr is continued pre-training's: the recipe's 0.06 on a fresh head shakes the loaded
  // backbone (29, 31, 28% after the same 5 steps).
  const data = 'synthetic:500';
  const file = join(tmpDir(), 'supervised.safetensors');
  supervisedCheckpoint(file, data, 40);
  const over: ConfigOverrides = { maxSteps: 5, knnEvery: 1000, knnFeature: 'backbone', seed: 1 };
  const fresh = await pretrain(resolveConfig(data, { ...TINY, ...over, out: tmpDir() }), { quiet: true });
  const init = await pretrain(resolveConfig(data, { ...TINY, ...over, lr: 0.01, initFrom: file, out: tmpDir() }), {
    quiet: true,
  });
  const text = `kNN after 5 steps: ${init.knnTop1!.toFixed(1)}% from the checkpoint (${init.knnTop1Init!.toFixed(1)}% before the first step) vs ${fresh.knnTop1!.toFixed(1)}% from scratch`;
  assert.ok(init.knnTop1! >= fresh.knnTop1! + 10, text);
});
