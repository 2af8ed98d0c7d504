// The image protocol end to end on a tiny run, its sanity check, the best checkpoint and --evaluate on it,
// and loadEncoder on official MoCo / torchvision files (features vs PyTorch) and on run directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { dispose, manualSeed, noGrad, randn, tensor } from '../../src/torch/index.js';
import { createModel, projectionHead } from '../../src/models/index.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { Synthetic } from '../../src/data/index.js';
import { checkBackboneUnchanged, loadEncoder, snapshotBackbone } from '../../src/eval/encoder.js';
import { lincls, linclsDefaults } from '../../src/eval/lincls.js';
import { randomPadCrop } from '../../src/eval/pad-crop.js';
import { Rng } from '../../src/data/rng.js';
import { spawnSync } from 'node:child_process';
import { interop } from '../helpers/interop.js';
import { CLI, randomEncoder } from '../collections/fixtures.js';
import { assertClose, tmpDir } from '../helpers/pytorch.js';
import { readEventFiles, visibleScalars } from '../helpers/tfevents.js';
import { eventFiles } from '../../src/train/run-log.js';

/**
 * A run directory as the pre-training loop writes it: checkpoint_0001.safetensors + `last`; the cifar preset's
 * MoCo v1 `fc` head, or an MLP.
 */
function fakeRun(dir: string, head: 'mlp' | 'fc' = 'mlp', seed = 2): void {
  manualSeed(seed);
  const m = createModel('resnet18', { cifarStem: true, width: 8 });
  m.replaceModule('fc', projectionHead(head, m.featureDim, 16));
  const sd = new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t]));
  const q = randn([16, 32]);
  sd.set('queue', q);
  mkdirSync(dir, { recursive: true });
  saveSafetensors(join(dir, 'checkpoint_0001.safetensors'), sd, {
    moco: JSON.stringify({
      arch: 'resnet18',
      cifarStem: true,
      width: 8,
      mlp: head === 'mlp',
      dim: 16,
      imageSize: 32,
      preset: 'cifar',
    }),
  });
  writeFileSync(join(dir, 'last'), 'checkpoint_0001.safetensors\n');
  q.dispose();
  m.dispose();
}

test('loadEncoder: run directory via `last`, metadata config, MLP head', () => {
  const dir = tmpDir();
  try {
    fakeRun(join(dir, 'run'));
    const e = loadEncoder(join(dir, 'run'));
    assert.equal(e.info.file, join(dir, 'run', 'checkpoint_0001.safetensors'));
    assert.deepEqual(
      [
        e.info.arch,
        e.info.cifarStem,
        e.info.width,
        e.info.featureDim,
        e.info.headKind,
        e.info.headDim,
        e.info.configFrom,
      ],
      ['resnet18', true, 8, 64, 'mlp', 16, 'metadata'],
    );
    assert.equal(e.preprocess().augment, 'cifar-eval');
    e.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("loadEncoder: official MoCo .pth.tar and torchvision .pth give PyTorch's features (arch inferred from weights)", () => {
  const dir = tmpDir();
  try {
    const x = randn([2, 3, 32, 32]);
    saveSafetensors(join(dir, 'x.safetensors'), { x });
    for (const [file, flags] of [
      ['moco.pth.tar', ['resnet18', 'mlp']],
      ['tv.pth', ['resnet18', 'cifar']],
    ] as const) {
      const path = join(dir, file);
      interop(...(file === 'tv.pth' ? ['save-tv', 'resnet18', path, 'zip', 'cifar'] : ['save-moco', 'resnet18', path]));
      interop('features', path, join(dir, 'x.safetensors'), join(dir, 'f.safetensors'), ...flags);
      const e = loadEncoder(path);
      assert.equal(e.info.configFrom, 'weights');
      assert.equal(e.info.cifarStem, file === 'tv.pth');
      const ref = new Map(Object.entries(loadRef(join(dir, 'f.safetensors'))));
      const f = e.backbone(x);
      assertClose(f, ref.get('feat')!, `${file} backbone`, { rtol: 1e-4, atol: 1e-4 });
      dispose([f, [...ref.values()]]);
      e.dispose();
    }
    x.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function loadRef(p: string): Record<string, import('../../src/torch/index.js').Tensor> {
  return Object.fromEntries(loadSafetensors(p).tensors);
}

test('the sanity check catches a modified backbone weight or BN statistic', () => {
  const m = createModel('resnet18', { cifarStem: true, width: 8 });
  const snap = snapshotBackbone(m);
  checkBackboneUnchanged(m, snap);
  noGrad(() => m.stateDict().get('fc.weight')!.add_(1)); // the classifier may change
  checkBackboneUnchanged(m, snap);
  noGrad(() => m.stateDict().get('layer2.1.conv1.weight')!.narrow(0, 0, 1).mul_(1.0001));
  assert.throws(() => checkBackboneUnchanged(m, snap), /sanity check failed.*layer2\.1\.conv1\.weight/);
  const m2 = createModel('resnet18', { cifarStem: true, width: 8 });
  const snap2 = snapshotBackbone(m2);
  noGrad(() => m2.stateDict().get('bn1.running_mean')!.add_(1e-3));
  assert.throws(() => checkBackboneUnchanged(m2, snap2), /bn1\.running_mean/);
  dispose([[...snap.values()], [...snap2.values()]]);
  m.dispose();
  m2.dispose();
});

test('image protocol: runs, keeps the best checkpoint, --evaluate on it reproduces its accuracy', async () => {
  const dir = tmpDir();
  try {
    fakeRun(join(dir, 'run'));
    const e = loadEncoder(join(dir, 'run'));
    const lines: string[] = [];
    const r = await lincls(e, new Synthetic({ n: 300, seed: 1 }), new Synthetic({ n: 100, seed: 2 }), {
      epochs: 2,
      lr: 0.1,
      batchSize: 64,
      outDir: join(dir, 'lin'),
      onLog: (l) => lines.push(l),
    });
    assert.equal(r.protocol, 'images');
    assert.equal(r.epochs, 2);
    assert.equal(r.steps, 10);
    assert.ok(lines.some((l) => /sanity check passed/.test(l)));
    assert.ok(
      existsSync(join(dir, 'lin', 'model_best.safetensors')) && existsSync(join(dir, 'lin', 'checkpoint.safetensors')),
    );
    const best = loadEncoder(join(dir, 'lin', 'model_best.safetensors'));
    assert.deepEqual([best.info.headKind, best.info.headDim, best.info.width], ['fc', 10, 8]);
    const ev = await lincls(best, new Synthetic({ n: 300, seed: 1 }), new Synthetic({ n: 100, seed: 2 }), {
      evaluate: true,
    });
    assert.equal(ev.last.top1, r.best!.top1);
    const cached = await lincls(e, new Synthetic({ n: 300, seed: 1 }), new Synthetic({ n: 100, seed: 2 }), {
      epochs: 3,
      lr: 0.1,
      cacheFeatures: true,
      maxSteps: 4,
    });
    assert.equal(cached.protocol, 'cached-features');
    assert.equal(cached.steps, 4);
    best.dispose();
    e.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('image protocol: 1 epoch + resume to 3 gives the epochs of one 3-epoch run; a changed setting is refused', async () => {
  const dir = tmpDir();
  try {
    fakeRun(join(dir, 'run'));
    const e = loadEncoder(join(dir, 'run'));
    const data = (): [Synthetic, Synthetic] => [new Synthetic({ n: 200, seed: 1 }), new Synthetic({ n: 60, seed: 2 })];
    const base = { lr: 0.1, batchSize: 64, schedule: [2] };
    const whole = await lincls(e, ...data(), { ...base, epochs: 3, outDir: join(dir, 'a') });
    const first = await lincls(e, ...data(), { ...base, epochs: 1, outDir: join(dir, 'b') });
    assert.equal(first.epochs, 1);
    const rest = await lincls(e, ...data(), {
      ...base,
      epochs: 3,
      outDir: join(dir, 'b'),
      resume: join(dir, 'b'),
    });
    assert.equal(rest.epochs, 3);
    assert.equal(rest.steps, whole.steps);
    const pick = (r: typeof whole): number[][] =>
      r.history.map((m) => [m.epoch, m.lr, m.trainLoss, m.val.top1, m.val.loss]);
    assert.deepEqual(pick(rest), pick(whole));
    const [a, b] = [
      loadSafetensors(join(dir, 'a', 'checkpoint.safetensors')).tensors,
      loadSafetensors(join(dir, 'b', 'checkpoint.safetensors')).tensors,
    ];
    assertClose(b.get('fc.weight')!, a.get('fc.weight')!, 'fc after resume', { rtol: 0, atol: 0 });
    // TensorBoard sees the same lincls/* scalars in the resumed folder's two event files as in the whole run's one
    // (read by the independent Python reader), and lincls.json holds the result.
    const scalars = (d: string): Map<string, number> => visibleScalars(readEventFiles(eventFiles(join(dir, d))));
    const [sa, sb] = [scalars('a'), scalars('b')];
    assert.equal(eventFiles(join(dir, 'b')).length, 2);
    assert.equal(sa.get(`lincls/val_acc1@${whole.steps}`), Math.fround(whole.last.top1));
    assert.equal(sa.size, 3 * 6);
    assert.deepEqual([...sb.entries()].sort(), [...sa.entries()].sort());
    assert.equal(
      (JSON.parse(readFileSync(join(dir, 'b', 'lincls.json'), 'utf8')) as { best: { top1: number } }).best.top1,
      rest.best!.top1,
    );
    // The last checkpoint (with optimiser state) is still a plain classifier for --evaluate.
    const last = loadEncoder(join(dir, 'b', 'checkpoint.safetensors'));
    assert.equal((await lincls(last, ...data(), { evaluate: true })).last.top1, rest.last.top1);
    last.dispose();
    await assert.rejects(
      lincls(e, ...data(), { ...base, lr: 0.2, epochs: 3, resume: join(dir, 'b') }),
      /written with lr = 0.1, this run has 0.2/,
    );
    await assert.rejects(
      lincls(e, ...data(), { ...base, epochs: 3, resume: join(dir, 'nothing') }),
      /--resume: .*not found/,
    );
    dispose([...a.values(), ...b.values()]);
    e.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('randomPadCrop: black padding in normalised units, per-sample 32×32 windows', () => {
  const mean = [0.5, 0.4, 0.3],
    std = [0.2, 0.25, 0.5];
  const x = tensor(
    Float32Array.from({ length: 2 * 3 * 4 * 4 }, (_, i) => i),
    { shape: [2, 3, 4, 4] },
  );
  const y = randomPadCrop(x, new Rng(1), mean, std, 2);
  assert.deepEqual(y.shape, [2, 3, 4, 4]);
  // Every value is from x or the channel's black level.
  const vals = y.toArray();
  // x holds the integers 0…95; padding holds −mean/std (float error from the shift allowed).
  vals.forEach((v, i) => {
    const c = Math.floor(i / 16) % 3;
    assert.ok(Math.abs(v - Math.round(v)) < 1e-4 || Math.abs(v + mean[c]! / std[c]!) < 1e-4, `value ${v}`);
  });
  dispose([x, y]);
});

/** `moco lincls ARGS` in a child process: exit status, stdout, stderr. */
function runLincls(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'lincls', ...args, '--threads', '1'], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The JSON summary line a successful `moco lincls` prints. */
function summary(r: { status: number | null; stdout: string; stderr: string }): {
  lr: number | null;
  lrFrom: string | null;
  numClasses: number;
  protocol: string;
  last: { top1: number };
} {
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ReturnType<typeof summary>;
}

test('moco lincls: a run whose loss explodes stops, naming --lr, its value, where it came from and a value to try', () => {
  const dir = tmpDir();
  try {
    const enc = randomEncoder(join(dir, 'enc.safetensors'));
    // Loss 4.6 → 175 in the first epoch on this encoder: finite, so it used to finish at chance accuracy.
    const r = runLincls(
      'synthetic:200',
      '--pretrained',
      enc,
      '--epochs',
      '3',
      '--batch-size',
      '50',
      '--cache-features',
      '--lr',
      '30',
      '--out',
      join(dir, 'lin'),
    );
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /diverged at epoch 1, step 4: the epoch's mean training loss is [\d.]+, above 23\.0 .*--lr 30 \(from --lr\); try --lr 0\.1\./,
    );
    assert.ok(!existsSync(join(dir, 'lin', 'lincls.json')), 'no result is written for a diverged run');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("moco lincls: the default lr follows the encoder — the cifar preset and CIFAR stems get theirs, ImageNet stems main_lincls.py's 30", () => {
  const dir = tmpDir();
  try {
    fakeRun(join(dir, 'run'), 'fc');
    const cifarStem = randomEncoder(join(dir, 'enc.safetensors'));
    manualSeed(3);
    const m = createModel('resnet18', { width: 8 });
    saveSafetensors(join(dir, 'tv.safetensors'), new Map([...m.stateDict()].filter(([k]) => !k.startsWith('fc.'))), {
      moco: JSON.stringify({ arch: 'resnet18', cifarStem: false, width: 8, imageSize: 32 }),
    });
    m.dispose();
    // One step: the first epoch's loss is the init's, whatever the lr.
    const run = (ckpt: string): ReturnType<typeof summary> =>
      summary(runLincls('synthetic:50', '--pretrained', ckpt, '--epochs', '1', '--max-steps', '1', '--cache-features'));
    const a = run(join(dir, 'run')),
      b = run(cifarStem),
      c = run(join(dir, 'tv.safetensors'));
    assert.deepEqual([a.lr, a.lrFrom], [0.1, "the default for the cifar preset's encoders"]);
    assert.deepEqual([b.lr, b.lrFrom], [0.1, 'the default for CIFAR-stem encoders']);
    assert.deepEqual([c.lr, c.lrFrom], [30, "main_lincls.py's default for ImageNet encoders"]);
    const given = summary(
      runLincls(
        'synthetic:50',
        '--pretrained',
        cifarStem,
        '--epochs',
        '1',
        '--max-steps',
        '1',
        '--cache-features',
        '--lr',
        '0.5',
      ),
    );
    assert.deepEqual([given.lr, given.lrFrom], [0.5, '--lr']);
    assert.match(
      spawnSync(process.execPath, [CLI, 'lincls', '--help'], { encoding: 'utf8' }).stdout.replace(/\s+/g, ' '),
      /--lr <lr> base learning rate \(default: 0\.1 for encoders of the cifar preset or with a CIFAR stem; 30, main_lincls\.py's, for ImageNet encoders/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moco lincls --evaluate refuses a pre-training checkpoint (MoCo fc or MLP head), naming it and what to pass', () => {
  const dir = tmpDir();
  try {
    fakeRun(join(dir, 'v1'), 'fc');
    fakeRun(join(dir, 'v2'), 'mlp');
    for (const run of ['v1', 'v2']) {
      const r = runLincls('synthetic:50', '--pretrained', join(dir, run), '--evaluate');
      assert.notEqual(r.status, 0, `${run}: ${r.stdout}`);
      assert.match(
        r.stderr,
        new RegExp(
          `--evaluate: ${join(dir, run, 'checkpoint_0001.safetensors')} has a pre-training projection head \\(${run === 'v1' ? 'MoCo fc' : 'MLP'}, 16-d\\), not a trained classifier\\. Pass the model_best\\.safetensors`,
        ),
      );
    }
    // A plain state dict's fc is taken for a classifier, but not one for another number of classes.
    manualSeed(5);
    const m = createModel('resnet18', { cifarStem: true, width: 8, numClasses: 16 });
    saveSafetensors(join(dir, 'tv16.safetensors'), m.stateDict());
    m.dispose();
    const r = runLincls('synthetic:50', '--pretrained', join(dir, 'tv16.safetensors'), '--evaluate');
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /has 16 outputs but the data has 10 classes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("moco lincls --evaluate --resume DIR evaluates that run's classifier on --pretrained's backbone, and refuses another backbone", () => {
  const dir = tmpDir();
  try {
    fakeRun(join(dir, 'run'), 'fc');
    fakeRun(join(dir, 'other'), 'fc', 7);
    const trained = summary(
      runLincls(
        'synthetic:200',
        '--pretrained',
        join(dir, 'run'),
        '--epochs',
        '2',
        '--batch-size',
        '50',
        '--lr',
        '0.01',
        '--out',
        join(dir, 'lin'),
      ),
    );
    const ev = summary(
      runLincls('synthetic:200', '--pretrained', join(dir, 'run'), '--evaluate', '--resume', join(dir, 'lin')),
    );
    assert.deepEqual([ev.protocol, ev.numClasses, ev.last.top1], ['evaluate', 10, trained.last.top1]);
    const r = runLincls(
      'synthetic:200',
      '--pretrained',
      join(dir, 'other'),
      '--evaluate',
      '--resume',
      join(dir, 'lin'),
    );
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /--evaluate --resume: .*lin\/checkpoint\.safetensors was trained on another backbone than --pretrained .*other\/checkpoint_0001\.safetensors .*pass the --pretrained that run was trained on/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the protocol's defaults follow the encoder: MoCo v3's for v3 encoders and ViTs, main_lincls.py's otherwise", () => {
  const info = { preset: null, cifarStem: false, layout: 'torchvision' as const, arch: 'resnet50' };
  assert.deepEqual((({ lr, cos, epochs }) => ({ lr, cos, epochs }))(linclsDefaults(info, 256)), {
    lr: 30,
    cos: false,
    epochs: 100,
  });
  assert.equal(linclsDefaults({ ...info, cifarStem: true, arch: 'resnet18' }, 256).lr, 0.1);
  // moco-v3's main_lincls.py: init_lr = lr × batch / 256; CONFIG.md's ViT runs use lr 3.
  const v3 = linclsDefaults({ ...info, layout: 'mocov3-official' }, 1024);
  assert.deepEqual([v3.lr, v3.cos, v3.epochs], [0.4, true, 90]);
  assert.match(v3.from, /MoCo v3's linear protocol for ResNet encoders \(0\.1 × batch 1024 \/ 256\)/);
  const vit = linclsDefaults({ ...info, arch: 'vit_small', layout: 'mocov3-official' }, 1024);
  assert.deepEqual([vit.lr, vit.cos, vit.epochs], [12, true, 90]);
  assert.equal(linclsDefaults({ ...info, preset: 'mocov3-cifar', cifarStem: true, arch: 'resnet18' }, 256).lr, 0.1);
  assert.equal(linclsDefaults({ ...info, preset: 'mocov2' }, 256).lr, 30);
});
