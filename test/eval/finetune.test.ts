// Semi-supervised fine-tuning: its step against a PyTorch fine-tuning loop (float64, two SGD steps), the
// class-balanced seeded label subset, a run with its checkpoints, resume and refusals, and that a MoCo-pre-trained
// network fine-tunes to a better classifier than the same run from random init.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import * as torch from '../../src/torch/index.js';
import { Tensor } from '../../src/torch/index.js';
import { createModel, createViT } from '../../src/models/index.js';
import { Synthetic } from '../../src/data/index.js';
import { pretrain, resolveConfig } from '../../src/train/index.js';
import {
  finetune,
  finetuneModel,
  finetuneOptimizer,
  finetuneStep,
  labelFractionSubset,
  loadEncoder,
  resolveFinetune,
} from '../../src/eval/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { TOL64, assertClose, pytorch, tmpDir } from '../helpers/pytorch.js';
import { CLI, randomEncoder } from '../collections/fixtures.js';

/** Points of top-1 the pre-trained run must win by (the smallest of three measured margins was 15.8). */
const MARGIN = 10;

const PY_FINETUNE = `
import torchvision
f = torchvision.models.resnet18(num_classes=10).double()
f.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False).double(); f.maxpool = nn.Identity()
f.load_state_dict({k[2:]: v for k, v in I.items() if k.startswith('m.')})
# SimCLR's fine-tuning (Appendix B.5): the whole network, Nesterov momentum 0.9; BN in train mode.
opt = torch.optim.SGD(f.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
f.train()
for step in range(2):
    loss = F.cross_entropy(f(I['x%d' % step]), I['y%d' % step])
    opt.zero_grad(); loss.backward()
    O['loss%d' % step] = loss.detach()
    for n, p in f.named_parameters(): O['g%d.%s' % (step, n)] = p.grad.clone()
    opt.step()
    for n, p in f.named_parameters(): O['p%d.%s' % (step, n)] = p.detach().clone()
    for n, b in f.named_buffers(): O['b%d.%s' % (step, n)] = b.clone()
`;

test('two fine-tuning steps match PyTorch in float64: loss, every gradient, weights and BN running stats', () => {
  torch.manualSeed(5);
  const m = finetuneModel(createModel('resnet18', { cifarStem: true }), 10, 3).to('float64');
  const inputs: Record<string, Tensor> = {};
  for (const [k, v] of m.stateDict()) inputs[`m.${k}`] = v.clone();
  for (let s = 0; s < 2; s++) {
    inputs[`x${s}`] = torch.randn([4, 3, 16, 16]).to('float64');
    inputs[`y${s}`] = torch.tensor(Int32Array.from([s, 3, 7, 3]), { dtype: 'int32' }).long();
  }
  const ref = pytorch(PY_FINETUNE, inputs);
  const opt = finetuneOptimizer(m, resolveFinetune({ labelFraction: 0.1, lr: 0.1, weightDecay: 1e-4 }));
  for (let s = 0; s < 2; s++) {
    const [loss] = finetuneStep(m, opt, inputs[`x${s}`]!, inputs[`y${s}`]!);
    assertClose(torch.tensor([loss], { dtype: 'float64' }).reshape(), ref[`loss${s}`]!, `loss step ${s}`, TOL64);
    for (const [n, p] of m.namedParameters()) {
      assertClose(p.grad!, ref[`g${s}.${n}`]!, `gradient of ${n}, step ${s}`, TOL64);
      assertClose(p, ref[`p${s}.${n}`]!, `${n} after step ${s}`, TOL64);
    }
    for (const [n, b] of m.namedBuffers()) {
      if (b.dtype === 'float64') assertClose(b, ref[`b${s}.${n}`]!, `${n} after step ${s}`, TOL64);
      else assert.deepEqual(b.toArray(), ref[`b${s}.${n}`]!.toArray(), `${n} after step ${s}`);
    }
  }
  opt.dispose();
  m.dispose();
  torch.dispose([Object.values(inputs), Object.values(ref)]);
});

test('the label subset: round(fraction × class count) from every class (at least 1), seeded, refusing bad input', () => {
  // Unbalanced classes: 300, 120 and 5 samples, shuffled.
  const counts = [300, 120, 5];
  const labels = Int32Array.from(counts.flatMap((n, c) => Array<number>(n).fill(c)));
  const perm = new Int32Array(labels.length).map((_, i) => (i * 7919) % labels.length);
  const shuffled = Int32Array.from(perm, (i) => labels[i]!);
  const per = (idx: Int32Array): number[] => counts.map((_, c) => idx.filter((i) => shuffled[i] === c).length);
  const a = labelFractionSubset(shuffled, 0.1, 0);
  assert.deepEqual(per(a), [30, 12, 1]);
  assert.deepEqual(
    [...a],
    [...a].sort((x, y) => x - y),
    'in dataset order',
  );
  assert.equal(new Set(a).size, a.length);
  assert.deepEqual([...labelFractionSubset(shuffled, 0.1, 0)], [...a], 'same seed, same samples');
  const b = labelFractionSubset(shuffled, 0.1, 1);
  assert.deepEqual(per(b), [30, 12, 1]);
  assert.notDeepEqual([...b], [...a], 'another seed, other samples');
  assert.deepEqual(per(labelFractionSubset(shuffled, 0.01, 0)), [3, 1, 1]);
  assert.equal(labelFractionSubset(shuffled, 1, 0).length, labels.length);
  for (const f of [0, -0.1, 1.5, NaN])
    assert.throws(() => labelFractionSubset(shuffled, f, 0), /--label-fraction: expected a fraction in \(0, 1\]/);
  assert.throws(
    () => labelFractionSubset(Int32Array.from([0, 0, 2]), 0.5, 0, { classes: ['cat', 'dog', 'owl'] }),
    /--label-fraction: class 'dog' \(label 1\) has no training images/,
  );
});

/** `moco finetune ARGS` in a child process. */
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'finetune', ...args, '--threads', '1'], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('moco finetune: writes the label list and checkpoints; 1 epoch + --resume to 2 is the 2-epoch run; bad input is refused', () => {
  const dir = tmpDir();
  try {
    const enc = randomEncoder(join(dir, 'enc.safetensors'));
    const base = ['synthetic:200', '--pretrained', enc, '--label-fraction', '0.1', '--batch-size', '8', '--lr', '0.05'];
    const whole = cli(...base, '--epochs', '2', '--out', join(dir, 'a'));
    assert.equal(whole.status, 0, whole.stderr);
    const a = JSON.parse(whole.stdout) as { trainSamples: number; steps: number; init: string; numClasses: number };
    // 10% of 20 images in each of 10 classes; 20 samples in batches of 8 → 3 steps an epoch.
    assert.deepEqual([a.trainSamples, a.steps, a.init, a.numClasses], [20, 6, 'pretrained', 10]);
    const rows = readFileSync(join(dir, 'a', 'label-subset.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    assert.equal(rows.length, 20);
    assert.deepEqual(
      [...new Set(rows.map((r) => r.split('\t')[2]))].length,
      10,
      'two of every class, named in the list',
    );
    for (const f of ['checkpoint.safetensors', 'model_best.safetensors', 'finetune.json'])
      assert.ok(existsSync(join(dir, 'a', f)), f);
    // The result is a classifier loadEncoder reads with its fine-tuned BN statistics.
    const best = loadEncoder(join(dir, 'a', 'model_best.safetensors'));
    assert.deepEqual([best.info.headRole, best.info.headDim], ['classifier', 10]);
    best.dispose();

    assert.equal(cli(...base, '--epochs', '2', '--max-steps', '3', '--out', join(dir, 'b')).status, 0);
    const rest = cli(...base, '--epochs', '2', '--out', join(dir, 'b'), '--resume', join(dir, 'b'));
    assert.equal(rest.status, 0, rest.stderr);
    assert.match(rest.stderr, /resuming from .*epoch 2, 3 steps done/);
    const [ta, tb] = [join(dir, 'a'), join(dir, 'b')].map(
      (d) => loadSafetensors(join(d, 'checkpoint.safetensors')).tensors,
    );
    for (const [k, t] of ta!) assertClose(tb!.get(k)!, t, `${k} after resume`, { rtol: 0, atol: 0 });
    torch.dispose([[...ta!.values()], [...tb!.values()]]);

    const refused = (args: string[], re: RegExp): void => {
      const r = cli(...args);
      assert.notEqual(r.status, 0, r.stdout);
      assert.match(r.stderr, re);
    };
    refused(
      [...base.slice(0, 4), '1.5'],
      /--label-fraction: expected a number in \(0, 1\] \(the papers use 0\.01 and 0\.1\), got '1\.5'/,
    );
    refused(
      [...base, '--epochs', '2', '--lr', '0.1', '--resume', join(dir, 'b')],
      /written with lr = 0.05, this run has 0.1/,
    );
    refused(
      [...base, '--epochs', '2', '--seed', '1', '--resume', join(dir, 'b')],
      /written with seed = 0, this run has 1/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'a MoCo-pre-trained network fine-tuned on 10% of the labels beats the same run from random init',
  { timeout: 600_000 },
  async () => {
    // README's first command cut to 200 steps (a ResNet-18 of width 8 on 16-px views of synthetic shapes), then
    // 15 epochs on 200 labels (20 a class) from its weights and from random ones. Measured with fine-tuning seeds
    // 0, 1, 2 on this pre-training: 56.5 vs 27.0, 56.8 vs 29.5, 44.5 vs 28.8 top-1 (margins 29.5, 27.3, 15.8).
    const dir = tmpDir();
    try {
      const run = join(dir, 'pre');
      await pretrain(
        resolveConfig('synthetic:2000', {
          preset: 'cifar',
          width: 8,
          imageSize: 16,
          batchSize: 128,
          K: 1024,
          symmetric: true,
          cropMin: 0.3,
          epochs: 100,
          maxSteps: 200,
          threads: 2,
          seed: 0,
          knnEvery: 0,
          printFreq: 1000,
          out: run,
        }),
        { quiet: true },
      );
      const top1: number[] = [];
      for (const randomInit of [false, true]) {
        const e = loadEncoder(run);
        const r = await finetune(e, new Synthetic({ n: 2000 }), new Synthetic({ n: 400, seed: 1_000_003 }), {
          labelFraction: 0.1,
          epochs: 15,
          lr: 0.1,
          batchSize: 32,
          seed: 0,
          randomInit,
        });
        e.dispose();
        assert.equal(r.trainSamples, 200);
        top1.push(r.last.top1);
      }
      const [moco, random] = top1 as [number, number];
      assert.ok(
        moco >= random + MARGIN,
        `fine-tuned top-1: ${moco.toFixed(1)}% from MoCo, ${random.toFixed(1)}% from random init`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('a ViT fine-tunes too: every weight moves, and model_best is a classifier loadEncoder reads', async () => {
  const dir = tmpDir();
  try {
    torch.manualSeed(2);
    const m = createViT('vit_tiny', { imgSize: 32, patchSize: 8, depth: 1 });
    const before = new Map([...m.stateDict()].filter(([k]) => !k.startsWith('head.')).map(([k, t]) => [k, t.clone()]));
    saveSafetensors(join(dir, 'vit.safetensors'), before, {
      moco: JSON.stringify({ arch: 'vit_tiny', imageSize: 32, preset: 'mocov3-vit-cifar' }),
    });
    m.dispose();
    const e = loadEncoder(join(dir, 'vit.safetensors'));
    const r = await finetune(e, new Synthetic({ n: 100 }), new Synthetic({ n: 20, seed: 5 }), {
      labelFraction: 0.5,
      epochs: 1,
      batchSize: 25,
      lr: 0.01,
      outDir: join(dir, 'ft'),
    });
    assert.deepEqual([r.arch, r.trainSamples, r.steps], ['vit_tiny', 50, 2]);
    const after = e.model.stateDict();
    // The position embedding is fixed (sin-cos, a buffer); every parameter trained.
    for (const [k] of e.model.namedParameters())
      if (!k.startsWith('head.'))
        assert.equal(
          torch.tidy(() => after.get(k)!.eq(before.get(k)!).all().item()),
          0,
          `${k} moved`,
        );
    e.dispose();
    const best = loadEncoder(join(dir, 'ft', 'model_best.safetensors'));
    assert.deepEqual([best.info.headRole, best.info.headDim], ['classifier', 10]);
    best.dispose();
    torch.dispose([...before.values()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
