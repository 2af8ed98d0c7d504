// `moco embed --engine onnx`: images → sharp → onnxruntime, matching our libtorch forward on the same pixels; the
// exported model's recorded transform makes both engines agree without flags; file names round-trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { exportResNetOnnx } from '../../src/models/resnet-onnx.js';
import { loadPretrained } from '../../src/io/pretrained.js';
import { dispose, manualSeed, tensor } from '../../src/torch/index.js';
import { createModel } from '../../src/models/index.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { interop } from '../helpers/interop.js';
import { repoRoot, tmpDir } from '../helpers/pytorch.js';
import { resnetForward } from '../helpers/resnet-ref.js';

test('moco embed --engine onnx --cifar matches the libtorch forward on the same images', async () => {
  const dir = tmpDir();
  try {
    const ckpt = join(dir, 'r18c.pth');
    interop('save-tv', 'resnet18', ckpt, 'zip', 'cifar');
    const w = loadPretrained(ckpt);
    const sd = new Map([...w.backbone, ...w.head]);
    const model = join(dir, 'm.onnx');
    exportResNetOnnx(model, sd, { head: true });
    mkdirSync(join(dir, 'img', 'sub'), { recursive: true });
    const pixels: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const px = new Uint8Array(32 * 32 * 3).map((_, j) => (j * (7 + i) + i * 31) % 256);
      pixels.push(px);
      await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
        .png()
        .toFile(join(dir, 'img', i === 2 ? 'sub' : '', `${i}.png`));
    }
    const out = join(dir, 'e.jsonl');
    execFileSync(
      process.execPath,
      [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'embed', model, join(dir, 'img'), '--cifar', '--out', out],
      { stdio: 'pipe' },
    );
    const rows = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { path: string; embedding: number[] });
    assert.deepEqual(
      rows.map((r) => r.path.slice(dir.length)),
      ['/img/0.png', '/img/1.png', '/img/sub/2.png'],
    );
    const mean = [0.4914, 0.4822, 0.4465],
      std = [0.2023, 0.1994, 0.201];
    const x = new Float32Array(3 * 3 * 32 * 32);
    pixels.forEach((px, n) => {
      for (let i = 0; i < 32 * 32; i++)
        for (let c = 0; c < 3; c++) x[n * 3072 + c * 1024 + i] = (px[i * 3 + c]! / 255 - mean[c]!) / std[c]!;
    });
    const xt = tensor(x, { shape: [3, 3, 32, 32] });
    const ours = resnetForward(sd, xt, { head: true }).data() as Float32Array;
    let d = 0;
    rows.forEach((r, n) =>
      r.embedding.forEach((v, j) => {
        d = Math.max(d, Math.abs(v - ours[n * r.embedding.length + j]!));
      }),
    );
    assert.ok(d <= 1e-4, `max abs diff ${d}`);
    // .npy output has the same numbers.
    const npy = join(dir, 'e.npy');
    execFileSync(
      process.execPath,
      [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'embed', model, join(dir, 'img'), '--cifar', '--out', npy],
      { stdio: 'pipe' },
    );
    const b = readFileSync(npy);
    const hl = b.readUInt16LE(8);
    assert.match(b.subarray(10, 10 + hl).toString('latin1'), /'shape': \(3, 1000\)/);
    const arr = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl));
    assert.equal(arr[5], Math.fround(rows[0]!.embedding[5]!));
    dispose([xt, sd]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Rows of an .npy written by `moco embed` and the paths beside it. */
function readNpy(file: string): { rows: Float32Array[]; paths: string[] } {
  const b = readFileSync(file);
  const hl = b.readUInt16LE(8);
  const [, n, d] = /'shape': \((\d+), (\d+)\)/.exec(b.subarray(10, 10 + hl).toString('latin1'))!.map(Number) as [
    number,
    number,
    number,
  ];
  const all = new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl, b.byteOffset + 10 + hl + n * d * 4));
  const paths = readFileSync(file.replace(/\.npy$/, '.paths.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as string);
  return { rows: Array.from({ length: n }, (_, i) => all.subarray(i * d, (i + 1) * d)), paths };
}

test('moco embed: an exported .onnx and its checkpoint give the same vectors, CIFAR-stem and 224-px models, no engine flag', async () => {
  const dir = tmpDir();
  try {
    const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
    const img = join(dir, 'img');
    mkdirSync(img);
    // Photos of other sizes than the models' inputs: 48×40 and 300×200 gradients with texture.
    for (const [i, [w, h]] of [
      [48, 40],
      [300, 200],
      [64, 64],
    ].entries()) {
      const px = new Uint8Array(w! * h! * 3).map(
        (_, j) => (((j / 3) % w!) * 3 + Math.floor(j / 3 / w!) * 5 + (j % 3) * 70 + ((j * 2654435761) >>> 28)) % 256,
      );
      await sharp(px, { raw: { width: w!, height: h!, channels: 3 } })
        .jpeg({ quality: 95 })
        .toFile(join(img, `${i}.jpg`));
    }
    for (const [name, cifarStem] of [
      ['cifar', true],
      ['imagenet', false],
    ] as const) {
      const ckpt = join(dir, `${name}.safetensors`);
      manualSeed(3);
      const m = createModel('resnet18', { cifarStem, width: 8 });
      saveSafetensors(ckpt, new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t])));
      m.dispose();
      const onnx = join(dir, `${name}.onnx`);
      execFileSync(process.execPath, [cli, 'export', ckpt, '--format', 'onnx', '--out', onnx], { stdio: 'pipe' });
      execFileSync(process.execPath, [cli, 'embed', onnx, img, '--out', join(dir, `${name}-onnx.npy`)], {
        stdio: 'pipe',
      });
      execFileSync(
        process.execPath,
        [cli, 'embed', img, '--pretrained', ckpt, '--out', join(dir, `${name}-torch.npy`)],
        { stdio: 'pipe', env: { ...process.env, MOCO_NO_CACHE: '1' } },
      );
      const a = readNpy(join(dir, `${name}-onnx.npy`));
      const b = readNpy(join(dir, `${name}-torch.npy`));
      assert.deepEqual(a.paths, b.paths);
      a.rows.forEach((r, i) => {
        let dot = 0,
          na = 0,
          nb = 0;
        r.forEach((v, j) => {
          dot += v * b.rows[i]![j]!;
          na += v * v;
          nb += b.rows[i]![j]! ** 2;
        });
        const cos = dot / Math.sqrt(na * nb);
        assert.ok(cos >= 0.9999, `${name}: ${a.paths[i]}: cosine ${cos} between the onnx and libtorch engines`);
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('moco embed: a newline in a file name round-trips through .paths.jsonl; a name that is not UTF-8 is listed as skipped', async () => {
  const dir = tmpDir();
  try {
    const cli = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
    const img = join(dir, 'img');
    mkdirSync(img);
    const px = new Uint8Array(32 * 32 * 3).map((_, j) => (j * 7) % 256);
    const png = await sharp(px, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toBuffer();
    for (let i = 0; i < 3; i++) writeFileSync(join(img, `${i}.png`), png);
    writeFileSync(join(img, 'two\nlines.png'), png);
    writeFileSync(Buffer.concat([Buffer.from(`${img}/latin1-`), Buffer.from([0xe9]), Buffer.from('.png')]), png);
    const ckpt = join(dir, 'enc.safetensors');
    manualSeed(3);
    const m = createModel('resnet18', { cifarStem: true, width: 8 });
    saveSafetensors(ckpt, new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t])));
    m.dispose();
    const out = join(dir, 'e.npy');
    const r = JSON.parse(
      execFileSync(process.execPath, [cli, 'embed', img, '--pretrained', ckpt, '--out', out], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, MOCO_NO_CACHE: '1' },
      })
        .trim()
        .split('\n')
        .pop()!,
    ) as { count: number; skipped: { path: string; reason: string }[] };
    assert.equal(r.count, 4);
    assert.equal(r.skipped.length, 1);
    assert.match(r.skipped[0]!.reason, /not valid UTF-8/);
    const { paths } = readNpy(out);
    assert.ok(paths.includes(join(img, 'two\nlines.png')));
    for (const p of paths) assert.ok(existsSync(p), `${JSON.stringify(p)} opens`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
