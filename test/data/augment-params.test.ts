// Statistics of the random augmentation parameters over 10,000 draws: within 3σ of torchvision's (or the
// analytic) values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleCropBox, sampleJitter, roundHalfEven, centerCropBox } from '../../src/data/augment-params.js';
import { drawViewParams, preset, specForView } from '../../src/data/augment.js';
import { Rng } from '../../src/data/rng.js';
import { PYTHON } from '../helpers/pytorch.js';
import { execFileSync } from 'node:child_process';

const N = 10_000;

function stats(xs: number[]): { mean: number; sd: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, sd: Math.sqrt(v) };
}

/** |mean − expected| ≤ 3 standard errors. */
function within3(label: string, xs: number[], expected: number, sd?: number): void {
  const s = stats(xs);
  const se = (sd ?? s.sd) / Math.sqrt(xs.length);
  assert.ok(
    Math.abs(s.mean - expected) <= 3 * se,
    `${label}: mean ${s.mean.toFixed(5)}, expected ${expected.toFixed(5)} ± ${(3 * se).toFixed(5)}`,
  );
}

/** Two samples' means agree within 3σ of their difference. */
function sameMean(label: string, a: number[], b: number[]): void {
  const sa = stats(a),
    sb = stats(b);
  const se = Math.sqrt(sa.sd ** 2 / a.length + sb.sd ** 2 / b.length);
  assert.ok(
    Math.abs(sa.mean - sb.mean) <= 3 * se,
    `${label}: ours ${sa.mean.toFixed(5)}, torchvision ${sb.mean.toFixed(5)} (3σ = ${(3 * se).toFixed(5)})`,
  );
}

function prop(label: string, hits: number, n: number, p: number): void {
  const se = Math.sqrt((p * (1 - p)) / n);
  assert.ok(Math.abs(hits / n - p) <= 3 * se, `${label}: ${(hits / n).toFixed(4)} vs p ${p} ± ${(3 * se).toFixed(4)}`);
}

test('roundHalfEven is Python round()', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6, 3].map(roundHalfEven), [0, 2, 2, -0, 2, 3, 3]);
});

test('crop area and log-ratio are uniform when every try fits (scale ≤ 0.5 on a large square)', () => {
  const rng = new Rng(1, 'crop-test');
  const area: number[] = [],
    lr: number[] = [];
  for (let i = 0; i < N; i++) {
    const b = sampleCropBox(rng, 10000, 10000, [0.2, 0.5], [3 / 4, 4 / 3]);
    area.push((b.width * b.height) / 1e8);
    lr.push(Math.log(b.width / b.height));
    assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= 10000 && b.top + b.height <= 10000);
  }
  within3('area fraction', area, 0.35, 0.3 / Math.sqrt(12));
  within3('log ratio', lr, 0, (2 * Math.log(4 / 3)) / Math.sqrt(12));
  assert.ok(Math.min(...area) >= 0.199 && Math.max(...area) <= 0.501);
  assert.ok(Math.max(...lr.map(Math.abs)) <= Math.log(4 / 3) + 1e-3);
});

test('crop boxes on 32×32 (scale 0.08–1, rejections and fallback) follow torchvision get_params', () => {
  const rng = new Rng(2, 'crop-test');
  const ours = { w: [] as number[], h: [] as number[], top: [] as number[], left: [] as number[] };
  for (let i = 0; i < N; i++) {
    const b = sampleCropBox(rng, 32, 32, [0.08, 1], [3 / 4, 4 / 3]);
    ours.w.push(b.width);
    ours.h.push(b.height);
    ours.top.push(b.top);
    ours.left.push(b.left);
    assert.ok(b.width >= 1 && b.height >= 1 && b.left + b.width <= 32 && b.top + b.height <= 32);
  }
  const py = execFileSync(PYTHON, [
    '-c',
    `
import torch, json
from torchvision.transforms import RandomResizedCrop
torch.manual_seed(0)
img = torch.zeros(3, 32, 32)
r = [RandomResizedCrop.get_params(img, [0.08, 1.0], [3/4, 4/3]) for _ in range(${N})]
print(json.dumps(r))
`,
  ]).toString();
  const tv = JSON.parse(py) as [number, number, number, number][];
  sameMean(
    'crop width',
    ours.w,
    tv.map((r) => r[3]),
  );
  sameMean(
    'crop height',
    ours.h,
    tv.map((r) => r[2]),
  );
  sameMean(
    'crop top',
    ours.top,
    tv.map((r) => r[0]),
  );
  sameMean(
    'crop left',
    ours.left,
    tv.map((r) => r[1]),
  );
  sameMean(
    'crop area',
    ours.w.map((w, i) => w * ours.h[i]!),
    tv.map((r) => r[2] * r[3]),
  );
});

test('center-crop fallback and eval box', () => {
  // An extreme strip never fits a ratio in [3/4, 4/3]: the center crop clamped to the ratio.
  const b = sampleCropBox(new Rng(3), 100, 10, [0.9, 1], [3 / 4, 4 / 3]);
  assert.deepEqual(b, { left: 43, top: 0, width: 13, height: 10 });
  const e = centerCropBox(500, 375, 256, 224);
  assert.ok(Math.abs(e.height - (375 * 224) / 256) < 1e-9 && Math.abs(e.left - (500 - e.width) / 2) < 1e-9);
});

test('ColorJitter factors and order: ranges, means and a uniform order', () => {
  const rng = new Rng(4);
  const b: number[] = [],
    c: number[] = [],
    s: number[] = [],
    h: number[] = [];
  const first = [0, 0, 0, 0];
  for (let i = 0; i < N; i++) {
    const j = sampleJitter(rng, { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 });
    b.push(j.brightness);
    c.push(j.contrast);
    s.push(j.saturation);
    h.push(j.hue);
    first[j.order[0]]!++;
    assert.deepEqual([...j.order].sort(), [0, 1, 2, 3]);
  }
  for (const [name, xs] of [
    ['brightness', b],
    ['contrast', c],
    ['saturation', s],
  ] as const) {
    assert.ok(Math.min(...xs) >= 0.6 && Math.max(...xs) <= 1.4, `${name} range`);
    within3(name, xs, 1, 0.8 / Math.sqrt(12));
  }
  assert.ok(Math.min(...h) >= -0.1 && Math.max(...h) <= 0.1);
  within3('hue', h, 0, 0.2 / Math.sqrt(12));
  first.forEach((k, op) => prop(`op ${op} first`, k, N, 0.25));
});

test('application probabilities of aug+ (jitter 0.8, gray 0.2, blur 0.5, flip 0.5) and σ ~ U[0.1, 2]', () => {
  const spec = preset('mocov2');
  const rng = new Rng(5);
  let j = 0,
    g = 0,
    bl = 0,
    fl = 0;
  const sig: number[] = [];
  for (let i = 0; i < N; i++) {
    const p = drawViewParams(spec, rng, 500, 375);
    if (p.jitter) j++;
    if (p.gray) g++;
    if (p.flip) fl++;
    if (p.sigma > 0) {
      bl++;
      sig.push(p.sigma);
    }
  }
  prop('jitter', j, N, 0.8);
  prop('grayscale', g, N, 0.2);
  prop('blur', bl, N, 0.5);
  prop('flip', fl, N, 0.5);
  assert.ok(Math.min(...sig) >= 0.1 && Math.max(...sig) <= 2);
  within3('blur sigma', sig, 1.05, 1.9 / Math.sqrt(12));
});

test('MoCo v3 pair: view 1 blur p 1.0 and no solarize, view 2 blur p 0.1 and solarize (128) p 0.2; shared jitter, gray, flip, crop', () => {
  for (const name of ['mocov3', 'mocov3-cifar'] as const) {
    const spec = preset(name);
    const rng = new Rng(6, name);
    const count = [0, 1].map(() => ({
      j: 0,
      g: 0,
      bl: 0,
      so: 0,
      fl: 0,
      sig: [] as number[],
      sat: [] as number[],
      area: [] as number[],
    }));
    for (let i = 0; i < N; i++) {
      for (const v of [0, 1]) {
        const p = drawViewParams(specForView(spec, v), rng, 500, 375);
        const c = count[v]!;
        if (p.jitter) {
          c.j++;
          c.sat.push(p.jitter.saturation);
        }
        if (p.gray) c.g++;
        if (p.flip) c.fl++;
        if (p.sigma > 0) {
          c.bl++;
          c.sig.push(p.sigma);
        }
        if (p.solarize !== undefined) {
          c.so++;
          assert.equal(p.solarize, 128);
        }
        c.area.push((p.box.width * p.box.height) / (500 * 375));
      }
    }
    const blur = name === 'mocov3' ? [1, 0.1] : [0, 0];
    count.forEach((c, v) => {
      const label = `${name} view ${v + 1}`;
      prop(`${label} jitter`, c.j, N, 0.8);
      prop(`${label} grayscale`, c.g, N, 0.2);
      prop(`${label} flip`, c.fl, N, 0.5);
      if (blur[v] === 1 || blur[v] === 0) assert.equal(c.bl, blur[v]! * N, `${label} blur`);
      else prop(`${label} blur`, c.bl, N, blur[v]!);
      if (v === 0) assert.equal(c.so, 0, `${label} solarize`);
      else prop(`${label} solarize`, c.so, N, 0.2);
      // ColorJitter(0.4, 0.4, 0.2, 0.1): saturation in [0.8, 1.2].
      assert.ok(Math.min(...c.sat) >= 0.8 && Math.max(...c.sat) <= 1.2, `${label} saturation range`);
      within3(`${label} saturation`, c.sat, 1, 0.4 / Math.sqrt(12));
      if (c.sig.length) assert.ok(Math.min(...c.sig) >= 0.1 && Math.max(...c.sig) <= 2, `${label} σ range`);
      // crop-min 0.08: areas below 0.2 (impossible for aug+'s 0.2) occur.
      assert.ok(
        Math.min(...c.area) < 0.1 && Math.min(...c.area) >= 0.075,
        `${label} crop area min ${Math.min(...c.area)}`,
      );
    });
  }
});

test('MoCo v3 presets: sizes, normalisation, cropMin; existing presets carry no solarize or view2', () => {
  const v3 = preset('mocov3');
  assert.equal(v3.size, 224);
  assert.deepEqual(v3.mean, [0.485, 0.456, 0.406]);
  assert.deepEqual(v3.crop!.scale, [0.08, 1]);
  assert.deepEqual(specForView(v3, 1).order, ['jitter', 'gray', 'blur', 'solarize']);
  assert.equal(specForView(v3, 0), v3);
  const c = preset('mocov3-cifar');
  assert.equal(c.size, 32);
  assert.deepEqual(c.std, [0.2023, 0.1994, 0.201]);
  assert.equal(c.blur, null);
  assert.equal(specForView(c, 1).blur, null);
  assert.deepEqual(preset('mocov3', { cropMin: 0.2 }).crop!.scale, [0.2, 1]);
  assert.deepEqual(preset('mocov3', { cropMin: 0.2 }).crop!.ratio, [3 / 4, 4 / 3]);
  assert.throws(() => preset('mocov3', { cropMin: 0 }), /cropMin/);
  for (const name of ['mocov2', 'mocov1', 'cifar', 'eval', 'cifar-eval', 'lincls-train'] as const) {
    const s = preset(name);
    assert.ok(!('solarize' in s) && !('view2' in s), `${name} unchanged`);
    assert.equal(specForView(s, 1), s);
  }
});
