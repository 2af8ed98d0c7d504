// `moco embed --engine onnx`: images → sharp → onnxruntime, matching our libtorch forward on the same pixels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { exportResNetOnnx } from '../../src/io/onnx-export.js';
import { loadPretrained } from '../../src/io/pretrained.js';
import { dispose, tensor } from '../../src/torch/index.js';
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
      await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(dir, 'img', i === 2 ? 'sub' : '', `${i}.png`));
    }
    const out = join(dir, 'e.jsonl');
    execFileSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'embed', model, join(dir, 'img'), '--cifar', '--out', out], { stdio: 'pipe' });
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { file: string; embedding: number[] });
    assert.deepEqual(rows.map((r) => r.file.slice(dir.length)), ['/img/0.png', '/img/1.png', '/img/sub/2.png']);
    const mean = [0.4914, 0.4822, 0.4465], std = [0.2023, 0.1994, 0.201];
    const x = new Float32Array(3 * 3 * 32 * 32);
    pixels.forEach((px, n) => {
      for (let i = 0; i < 32 * 32; i++) for (let c = 0; c < 3; c++) x[n * 3072 + c * 1024 + i] = (px[i * 3 + c]! / 255 - mean[c]!) / std[c]!;
    });
    const xt = tensor(x, { shape: [3, 3, 32, 32] });
    const ours = resnetForward(sd, xt, { head: true }).data() as Float32Array;
    let d = 0;
    rows.forEach((r, n) => r.embedding.forEach((v, j) => { d = Math.max(d, Math.abs(v - ours[n * r.embedding.length + j]!)); }));
    assert.ok(d <= 1e-4, `max abs diff ${d}`);
    // .npy output has the same numbers.
    const npy = join(dir, 'e.npy');
    execFileSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'embed', model, join(dir, 'img'), '--cifar', '--out', npy], { stdio: 'pipe' });
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
