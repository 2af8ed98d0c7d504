// Each batched augmentation op against torchvision.transforms.functional on fixed parameters, on real CIFAR
// images (decoded once with sharp; both sides get the same pixels).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { dispose, tensor, tidy, type Tensor } from '../../src/torch/index.js';
import { decodeAll } from '../../src/data/decode.js';
import * as A from '../../src/data/augment-ops.js';
import {
  Augmentation,
  drawViewParams,
  photometric_,
  photometricAten_,
  preset,
  specForView,
  type AugmentSpec,
  type ViewParams,
} from '../../src/data/augment.js';
import { Rng } from '../../src/data/rng.js';
import { cat, empty, photometricInto, PhotometricOp } from '../../src/torch/index.js';
import { blurKernelSize } from '../../src/data/augment-ops.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

export const CIFAR_DIR = '/work/shared/datasets/cifar10';
const CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
const have = existsSync(join(CIFAR_DIR, 'test'));
const N = 10;
let u8: Tensor;
let x: Tensor;

before(async () => {
  if (!have) return;
  const paths = CLASSES.map((c, i) => join(CIFAR_DIR, 'test', c, `${String(i * 7).padStart(4, '0')}.jpg`));
  u8 = (await decodeAll(paths)).images;
  x = tidy(() => u8.float().div(255));
});

const TOL = { rtol: 0, atol: 2 / 255 };
const f = (vals: number[]): Tensor => tensor(Float32Array.from(vals));
const skip = !have && 'CIFAR-10 JPEGs not present';

// Per-sample factors: deliberately spread over the ColorJitter range and beyond.
const FAC = [0.6, 0.75, 0.9, 1.0, 1.1, 1.25, 1.4, 0.0, 2.0, 0.65];
const HUE = [-0.1, -0.07, -0.03, 0, 0.02, 0.05, 0.1, -0.5, 0.5, 0.33];

test('brightness, contrast, saturation, hue match torchvision per sample', { skip }, () => {
  const o = pytorch(
    `
import torchvision.transforms.functional as TF
O['b'] = torch.stack([TF.adjust_brightness(x[i], float(fac[i])) for i in range(len(fac))])
O['c'] = torch.stack([TF.adjust_contrast(x[i], float(fac[i])) for i in range(len(fac))])
O['s'] = torch.stack([TF.adjust_saturation(x[i], float(fac[i])) for i in range(len(fac))])
O['h'] = torch.stack([TF.adjust_hue(x[i], float(hue[i])) for i in range(len(hue))])
`,
    { x, fac: f(FAC), hue: f(HUE) },
  );
  tidy(() => {
    assertClose(A.adjustBrightness(x, FAC), o.b!, 'brightness', TOL);
    assertClose(A.adjustContrast(x, FAC), o.c!, 'contrast', TOL);
    assertClose(A.adjustSaturation(x, FAC), o.s!, 'saturation', TOL);
    assertClose(A.adjustHue(x, HUE), o.h!, 'hue', TOL);
    // Ours is exact up to float rounding, far inside the 2/255 acceptance.
    assertClose(A.adjustHue(x, HUE), o.h!, 'hue (tight)', { rtol: 0, atol: 1e-4 });
  });
  dispose(o);
});

test('grayscale and normalize match torchvision', { skip }, () => {
  const o = pytorch(
    `
import torchvision.transforms.functional as TF
O['g'] = TF.rgb_to_grayscale(x, num_output_channels=3)
O['n'] = TF.normalize(x, [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])
`,
    { x },
  );
  tidy(() => {
    assertClose(A.grayscale3(x), o.g!, 'grayscale', TOL);
    assertClose(A.normalize(x, [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.201]), o.n!, 'normalize', {
      rtol: 0,
      atol: 1e-5,
    });
  });
  dispose(o);
});

test('Gaussian blur with a σ per sample matches torchvision (same kernel size)', { skip }, () => {
  const sig = [0.1, 0.3, 0.5, 0.8, 1.0, 1.3, 1.6, 1.9, 2.0, 0.15];
  const ks = sig.map((s) => blurKernelSize(s, 32, 32));
  const o = pytorch(
    `
import torchvision.transforms.functional as TF
O['y'] = torch.cat([TF.gaussian_blur(x[i:i+1], [int(ks[i])]*2, [float(sig[i])]*2) for i in range(len(sig))])
`,
    { x, sig: f(sig), ks: f(ks) },
  );
  tidy(() => assertClose(A.gaussianBlur(x, sig), o.y!, 'blur', { rtol: 0, atol: 1e-5 }));
  dispose(o);
});

test('resized crop (+ flip) in one grid_sample matches resized_crop: ≤ 1/255', { skip }, () => {
  const boxes = [
    { top: 0, left: 0, height: 32, width: 32 },
    { top: 3, left: 5, height: 20, width: 17 },
    { top: 10, left: 0, height: 9, width: 12 },
    { top: 0, left: 20, height: 32, width: 12 },
    { top: 29, left: 29, height: 3, width: 3 },
    { top: 1, left: 2, height: 30, width: 24 },
    { top: 8, left: 8, height: 16, width: 16 },
    { top: 0, left: 0, height: 1, width: 1 },
    { top: 5, left: 1, height: 27, width: 31 },
    { top: 12, left: 7, height: 11, width: 23 },
  ];
  const flips = boxes.map((_, i) => i % 3 === 1);
  const bt = tensor(Int32Array.from(boxes.flatMap((b) => [b.top, b.left, b.height, b.width])), { shape: [N, 4] });
  const fl = tensor(Int32Array.from(flips, Number));
  const o = pytorch(
    `
import torchvision.transforms.functional as TF
out = []
for i in range(x.shape[0]):
    t, l, h, w = [int(v) for v in bt[i]]
    y = TF.resized_crop(x[i], t, l, h, w, [32, 32], TF.InterpolationMode.BILINEAR, antialias=False)
    out.append(TF.hflip(y) if int(fl[i]) else y)
O['y'] = torch.stack(out)
O['big'] = torch.stack([TF.resized_crop(x[i], 4, 2, 20, 26, [56, 48], TF.InterpolationMode.BILINEAR, antialias=False) for i in range(x.shape[0])])
`,
    { x, bt, fl },
  );
  tidy(() => {
    assertClose(
      A.resizedCrop(
        u8,
        Array.from({ length: N }, (_, i) => i),
        boxes,
        32,
        flips,
      ).div(255),
      o.y!,
      'resized_crop',
      { rtol: 0, atol: 1 / 255 },
    );
    const big = A.resizedCrop(
      x,
      Array.from({ length: N }, (_, i) => i),
      boxes.map(() => ({ top: 4, left: 2, height: 20, width: 26 })),
      [56, 48],
    );
    assertClose(big, o.big!, 'resized_crop to 56×48', { rtol: 0, atol: 1e-4 });
  });
  dispose(o);
});

test(
  'the whole photometric chain (jitter in random order, gray, blur) + normalize matches torchvision: ≤ 2/255',
  { skip },
  () => {
    const spec = { ...preset('mocov2', { size: 32 }) };
    const orders: [number, number, number, number][] = [
      [0, 1, 2, 3],
      [3, 2, 1, 0],
      [1, 3, 0, 2],
      [2, 0, 3, 1],
      [3, 0, 2, 1],
      [0, 2, 3, 1],
      [1, 0, 2, 3],
      [2, 3, 1, 0],
      [3, 1, 0, 2],
      [0, 3, 1, 2],
    ];
    const params: ViewParams[] = orders.map((order, i) => ({
      box: { left: 0, top: 0, width: 32, height: 32 },
      flip: false,
      jitter:
        i === 4
          ? null
          : {
              order,
              brightness: 0.6 + 0.08 * i,
              contrast: 1.4 - 0.07 * i,
              saturation: 0.7 + 0.05 * i,
              hue: -0.1 + 0.02 * i,
            },
      gray: i % 4 === 2,
      sigma: i % 2 ? 0.1 + 0.19 * i : 0,
    }));
    const P = tensor(
      Float32Array.from(
        params.flatMap((p) => [
          p.jitter ? 1 : 0,
          ...(p.jitter?.order ?? [0, 0, 0, 0]),
          p.jitter?.brightness ?? 1,
          p.jitter?.contrast ?? 1,
          p.jitter?.saturation ?? 1,
          p.jitter?.hue ?? 0,
          p.gray ? 1 : 0,
          p.sigma,
          p.sigma ? blurKernelSize(p.sigma, 32, 32) : 0,
        ]),
      ),
      { shape: [N, 12] },
    );
    const o = pytorch(
      `
import torchvision.transforms.functional as TF
out = []
for i in range(x.shape[0]):
    p = P[i].tolist(); img = x[i]
    if p[0]:
        for fid in [int(v) for v in p[1:5]]:
            if fid == 0: img = TF.adjust_brightness(img, p[5])
            if fid == 1: img = TF.adjust_contrast(img, p[6])
            if fid == 2: img = TF.adjust_saturation(img, p[7])
            if fid == 3: img = TF.adjust_hue(img, p[8])
    if p[9]: img = TF.rgb_to_grayscale(img, num_output_channels=3)
    if p[10]: img = TF.gaussian_blur(img.unsqueeze(0), [int(p[11])]*2, [p[10]]*2)[0]
    out.append(TF.normalize(img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
O['y'] = torch.stack(out)
`,
      { x, P },
    );
    tidy(() => {
      // Compare in pixel units: undo the normalisation (× std) so the tolerance is in 1/255 of [0, 1].
      const std = tensor(Float32Array.from(spec.std), { shape: [1, 3, 1, 1] });
      // The CPU path (native kernel) and the ATen composition (other devices) both.
      assertClose(photometric_(x.clone(), params, spec).mul(std), o.y!.mul(std), 'aug chain (native)', TOL);
      assertClose(photometricAten_(x.clone(), params, spec).mul(std), o.y!.mul(std), 'aug chain (ATen)', TOL);
      assertClose(photometric_(x.clone(), params, spec), photometricAten_(x.clone(), params, spec), 'native vs ATen', {
        rtol: 0,
        atol: 1e-4,
      });
    });
    dispose(o);
  },
);

// ---------------------------------------------------------------- MoCo v3: solarize and the asymmetric pair

/** Every uint8 value in each channel (a 16×16 ramp, shifted per channel) beside the CIFAR images. */
function ramp(): Tensor {
  const a = new Uint8Array(3 * 32 * 32);
  for (let c = 0; c < 3; c++) for (let i = 0; i < 1024; i++) a[c * 1024 + i] = (i + 85 * c) & 255;
  return tensor(a, { shape: [1, 3, 32, 32], dtype: 'uint8' });
}

test(
  'solarize equals PIL ImageOps.solarize on the same uint8 images, exactly (native and ATen, several thresholds)',
  { skip },
  () => {
    const imgs = tidy(() => cat([u8, ramp()]));
    const n = imgs.shape[0]!;
    const thr = Array.from({ length: n }, (_, i) => [128, 128, 0, 64, 200, 255, 256, 128, 1, 128, 128][i]!);
    const o = pytorch(
      `
import numpy as np
from PIL import Image, ImageOps
out = []
for i in range(imgs.shape[0]):
    im = Image.fromarray(imgs[i].permute(1, 2, 0).contiguous().numpy())
    out.append(torch.from_numpy(np.array(ImageOps.solarize(im, int(thr[i])))).permute(2, 0, 1))
O['y'] = torch.stack(out).float()
O['d'] = torch.stack([torch.from_numpy(np.array(ImageOps.solarize(Image.fromarray(imgs[i].permute(1, 2, 0).contiguous().numpy())))).permute(2, 0, 1) for i in range(imgs.shape[0])]).float()
`,
      { imgs, thr: f(thr) },
    );
    tidy(() => {
      const x = imgs.float().div(255);
      const exact = (got: Tensor, want: Tensor, label: string): void => {
        // v / 255 in float32: ×255 lands within float rounding of the integer PIL gives.
        assertClose(got.mul(255), want, label, { rtol: 0, atol: 1e-3 });
        assert.equal(got.mul(255).round().sub(want).abs().max().item(), 0, `${label}: not exact`);
      };
      exact(A.solarize(x, thr), o.y!, 'solarize (ATen)');
      // The native op, from uint8 channels-last (the files path) and from float planes (the in-memory path).
      const prog = Float32Array.from(thr.flatMap((t) => [PhotometricOp.solarize, t, 0]));
      for (const [label, input, scale] of [
        ['uint8 HWC', imgs.permute(0, 2, 3, 1).contiguous(), 1 / 255],
        ['float NCHW', x, 1],
      ] as const) {
        const out = empty([n, 3, 32, 32]);
        photometricInto(input, scale, prog, 1, [0, 0, 0], [1, 1, 1], out);
        exact(out, o.y!, `solarize (native, ${label})`);
      }
      // PIL's default threshold is 128, the one MoCo v3's Solarize() uses.
      exact(
        A.solarize(
          x,
          thr.map(() => 128),
        ),
        o.d!,
        'solarize (PIL default threshold)',
      );
    });
    dispose([imgs, o]);
  },
);

/** Draws from `spec`'s view 2 until `want` holds for the collected set; deterministic (seeded). */
function drawCovering(spec: AugmentSpec, n: number, S: number): ViewParams[] {
  const v2 = specForView(spec, 1);
  for (let seed = 0; ; seed++) {
    const rng = new Rng(seed, 'v3-parity');
    const ps = Array.from({ length: n }, () => drawViewParams(v2, rng, S, S));
    const sol = ps.filter((p) => p.solarize !== undefined).length;
    if (
      sol >= 3 &&
      ps.some((p) => p.sigma > 0) &&
      ps.some((p) => p.gray) &&
      ps.some((p) => !p.jitter) &&
      ps.some((p) => p.flip)
    )
      return ps;
  }
}

test(
  'the MoCo v3 view-2 pipeline (crop, jitter, gray, blur, solarize, flip, normalise) matches torchvision on its drawn parameters: ≤ 2/255',
  { skip },
  () => {
    const spec = preset('mocov3', { size: 32 });
    const params = drawCovering(spec, N, 32);
    const P = tensor(
      Float32Array.from(
        params.flatMap((p) => [
          p.box.top,
          p.box.left,
          p.box.height,
          p.box.width,
          p.flip ? 1 : 0,
          p.jitter ? 1 : 0,
          ...(p.jitter?.order ?? [0, 0, 0, 0]),
          p.jitter?.brightness ?? 1,
          p.jitter?.contrast ?? 1,
          p.jitter?.saturation ?? 1,
          p.jitter?.hue ?? 0,
          p.gray ? 1 : 0,
          p.sigma,
          p.sigma ? blurKernelSize(p.sigma, 32, 32) : 0,
          p.solarize ?? -1,
        ]),
      ),
      { shape: [N, 18] },
    );
    // torchvision's order: RandomResizedCrop, ColorJitter, RandomGrayscale, blur, Solarize (PIL, on the 8-bit
    // image: quantised, solarized, back to float), RandomHorizontalFlip, ToTensor, Normalize.
    const o = pytorch(
      `
import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps
out = []
for i in range(x.shape[0]):
    p = P[i].tolist()
    img = TF.resized_crop(x[i], int(p[0]), int(p[1]), int(p[2]), int(p[3]), [32, 32], TF.InterpolationMode.BILINEAR, antialias=False)
    if p[5]:
        for fid in [int(v) for v in p[6:10]]:
            if fid == 0: img = TF.adjust_brightness(img, p[10])
            if fid == 1: img = TF.adjust_contrast(img, p[11])
            if fid == 2: img = TF.adjust_saturation(img, p[12])
            if fid == 3: img = TF.adjust_hue(img, p[13])
    if p[14]: img = TF.rgb_to_grayscale(img, num_output_channels=3)
    if p[15]: img = TF.gaussian_blur(img.unsqueeze(0), [int(p[16])]*2, [p[15]]*2)[0]
    if p[17] >= 0:
        u = (img.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        img = TF.to_tensor(ImageOps.solarize(Image.fromarray(u), int(p[17])))
    if p[4]: img = TF.hflip(img)
    out.append(TF.normalize(img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
O['y'] = torch.stack(out)
`,
      { x, P },
    );
    tidy(() => {
      const std = tensor(Float32Array.from(spec.std), { shape: [1, 3, 1, 1] });
      const crop = (): Tensor =>
        A.resizedCrop(
          u8,
          Array.from({ length: N }, (_, i) => i),
          params.map((p) => p.box),
          32,
          params.map((p) => p.flip),
        ).div_(255);
      const v2 = specForView(spec, 1);
      assertClose(photometric_(crop(), params, v2).mul(std), o.y!.mul(std), 'v3 view 2 (native)', TOL);
      assertClose(photometricAten_(crop(), params, v2).mul(std), o.y!.mul(std), 'v3 view 2 (ATen)', TOL);
    });
    dispose(o);
  },
);

test(
  'Augmentation mocov3: view 1 from pipeline 1, view 2 from pipeline 2 (per-sample specs; native = ATen)',
  { skip },
  () => {
    const spec = preset('mocov3', { size: 32 });
    const aug = new Augmentation(spec);
    const idx = Array.from({ length: N }, (_, i) => i);
    const [q, k] = aug.fromMemory(u8, idx, new Rng(11, 'aug', 0, 0, 0), 2) as [Tensor, Tensor];
    // The same draws by hand: view-major, view 1 with the spec, view 2 with its override.
    const rng = new Rng(11, 'aug', 0, 0, 0);
    const specs = [specForView(spec, 0), specForView(spec, 1)];
    const params = specs.flatMap((s) => idx.map(() => drawViewParams(s, rng, 32, 32)));
    const perSample = params.map((_, i) => specs[Math.floor(i / N)]!);
    assert.ok(
      params.slice(0, N).every((p) => p.sigma > 0 && p.solarize === undefined),
      'view 1: blur always, never solarize',
    );
    tidy(() => {
      const crop = (): Tensor =>
        A.resizedCrop(
          u8,
          [...idx, ...idx],
          params.map((p) => p.box),
          32,
          params.map((p) => p.flip),
        ).div_(255);
      const want = photometric_(crop(), params, perSample);
      assertClose(q, want.narrow(0, 0, N), 'view 1', { rtol: 0, atol: 0 });
      assertClose(k, want.narrow(0, N, N), 'view 2', { rtol: 0, atol: 0 });
      // The ATen composition groups the two views by their stage order; it agrees with the native kernel.
      assertClose(photometricAten_(crop(), params, perSample), want, 'native vs ATen (mixed specs)', {
        rtol: 0,
        atol: 1e-4,
      });
      // A symmetric spec (view 1's pipeline for both) gives the same view 1: only view 2 changed.
      const [q1] = new Augmentation({ ...spec, view2: null }).fromMemory(u8, idx, new Rng(11, 'aug', 0, 0, 0), 2);
      assertClose(q1!, q, 'view 1 unchanged by view2', { rtol: 0, atol: 0 });
    });
    dispose([q, k]);
  },
);
