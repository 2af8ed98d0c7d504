// pHash: the bits equal a PyTorch DCT-II written from its definition (the mirror hash equal to the hash of the
// flipped pixels, computed there by flipping); hashPairs finds exactly the brute-force pairs; a mirrored image is
// at distance 0 and a brightened one close, where an unrelated image is far.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import sharp from 'sharp';
import {
  hashDistance,
  hashPairs,
  phashImage,
  phashOfPixels,
  formatPHash,
  parsePHash,
  type PHash,
} from '../../src/collections/phash.js';
import { tensor } from '../../src/torch/index.js';
import { pytorch } from '../helpers/pytorch.js';
import { CIFAR_TEST } from './fixtures.js';

const bitsOf = (w: [number, number]): number[] =>
  Array.from({ length: 63 }, (_, i) => (i < 32 ? (w[0] >>> i) & 1 : (w[1] >>> (i - 32)) & 1));

test('phashOfPixels equals a DCT-II from its definition in PyTorch, mirror hash included', () => {
  let s = 7;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  const n = 6;
  const px = Array.from({ length: n }, (_, k) =>
    Float64Array.from({ length: 1024 }, (_, i) =>
      Math.round(255 * (0.5 + 0.4 * Math.sin((i % 32) / (3 + k)) * Math.cos(i / 32 / (2 + k)) + 0.1 * rnd())),
    ),
  );
  const flat = new Float64Array(n * 1024);
  px.forEach((p, k) => flat.set(p, k * 1024));
  const O = pytorch(
    `
N = 32
x = torch.arange(N, dtype=torch.float64)
u = torch.arange(8, dtype=torch.float64)
C = torch.cos(math.pi * (2 * x[None, :] + 1) * u[:, None] / (2 * N))   # 8 x 32
def bits(P):
    D = C @ P @ C.T                                               # 8 x 8: rows vertical, columns horizontal
    v = D.flatten()[1:]
    return (v > v.median()).to(torch.float64)
O['hash'] = torch.stack([bits(p) for p in img.reshape(-1, N, N)])
O['mirror'] = torch.stack([bits(torch.flip(p, [1])) for p in img.reshape(-1, N, N)])
`,
    { img: tensor(flat, { shape: [n, 1024], dtype: 'float64' }) },
  );
  const ref = O.hash!.data() as Float64Array;
  const refM = O.mirror!.data() as Float64Array;
  px.forEach((p, k) => {
    const h = phashOfPixels(p);
    assert.deepEqual(bitsOf(h.hash), Array.from(ref.subarray(k * 63, (k + 1) * 63)), `hash ${k}`);
    assert.deepEqual(bitsOf(h.mirror), Array.from(refM.subarray(k * 63, (k + 1) * 63)), `mirror hash ${k}`);
    assert.deepEqual(parsePHash(formatPHash(h)), h);
  });
});

test('hashPairs finds exactly the pairs a brute-force comparison finds, mirrored ones included', () => {
  let s = 99;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  const word = (): number => Math.floor(rnd() * 2 ** 32) >>> 0;
  const base: PHash[] = Array.from({ length: 60 }, () => ({
    hash: [word(), word() & 0x7fffffff],
    mirror: [word(), word() & 0x7fffffff],
  }));
  // Near copies: a few bits flipped, some mirrored (hash and mirror swapped).
  const hashes = [...base];
  for (let i = 0; i < 120; i++) {
    const b = base[i % base.length]!;
    const flip = (w: [number, number]): [number, number] => {
      const o: [number, number] = [w[0], w[1]];
      for (let k = 0; k < i % 12; k++) {
        const bit = Math.floor(rnd() * 63);
        if (bit < 32) o[0] = (o[0] ^ (1 << bit)) >>> 0;
        else o[1] = (o[1] ^ (1 << (bit - 32))) >>> 0;
      }
      return o;
    };
    hashes.push(
      i % 3 ? { hash: flip(b.hash), mirror: flip(b.mirror) } : { hash: flip(b.mirror), mirror: flip(b.hash) },
    );
  }
  for (const H of [0, 4, 7, 10]) {
    const brute: string[] = [];
    for (let i = 0; i < hashes.length; i++)
      for (let j = i + 1; j < hashes.length; j++)
        if (hashDistance(hashes[i]!, hashes[j]!) <= H) brute.push(`${i},${j}`);
    const fast = hashPairs(hashes, H).map(([i, j]) => `${i},${j}`);
    assert.deepEqual(fast.sort(), brute.sort(), `H ${H}`);
    if (H === 10) assert.ok(brute.length > 100);
  }
});

test('phashImage: a mirrored copy is at distance 0, a brightened copy close, other images far', async () => {
  const files = readdirSync(join(CIFAR_TEST, 'dog'))
    .sort()
    .slice(0, 8)
    .map((f) => join(CIFAR_TEST, 'dog', f));
  const up = await Promise.all(files.map((f) => sharp(f).resize(96, 96).png().toBuffer()));
  const h = await Promise.all(up.map((b) => phashImage(b)));
  const mirrored = await phashImage(await sharp(up[0]!).flop().png().toBuffer());
  const bright = await phashImage(await sharp(up[0]!).modulate({ brightness: 1.3 }).png().toBuffer());
  assert.equal(hashDistance(h[0]!, mirrored), 0);
  assert.ok(hashDistance(h[0]!, bright) <= 6, `brightened: ${hashDistance(h[0]!, bright)}`);
  for (let i = 1; i < h.length; i++)
    assert.ok(hashDistance(h[0]!, h[i]!) > 12, `image ${i}: ${hashDistance(h[0]!, h[i]!)}`);
});
