// The native photometric kernel (native/image.cc) against torchvision.transforms.functional, op by op, on
// non-square images with both input layouts; and its argument checks (JS errors, never a crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cropResizeInto,
  dispose,
  empty,
  photometricInto,
  PhotometricOp as Op,
  tensor,
  tidy,
} from '../../src/torch/index.js';
import { assertClose, pytorch } from '../helpers/pytorch.js';

const N = 6,
  H = 40,
  W = 56;
const MEAN = [0.485, 0.456, 0.406],
  STD = [0.229, 0.224, 0.225];

/** Smooth colour gradients plus noise, with flat and gray regions (where hue is undefined and max = min). */
function pixels(): Uint8Array {
  const a = new Uint8Array(N * H * W * 3);
  let seed = 12345;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let n = 0; n < N; n++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const o = ((n * H + y) * W + x) * 3;
        if (x < 6) {
          a[o] = a[o + 1] = a[o + 2] = (y * 6) & 255;
          continue;
        }
        a[o] = (x * 4 + n * 40 + rnd() * 30) & 255;
        a[o + 1] = (y * 6 + rnd() * 30) & 255;
        a[o + 2] = ((x + y) * 3 + n * 20) & 255;
      }
  return a;
}

function program(ops: [number, number, number][]): Float32Array {
  return Float32Array.from(ops.flat());
}

test('each op, from uint8 HWC and from float NCHW, matches torchvision (≤ 1e-4 after normalisation)', () => {
  const hwc = tensor(pixels(), { shape: [N, H, W, 3], dtype: 'uint8' });
  const x = tidy(() => hwc.permute(0, 3, 1, 2).contiguous().float().div(255));
  // One op a sample: brightness, contrast, saturation, hue (two signs), grayscale; then blur with a big kernel.
  const ops: [number, number, number][] = [
    [Op.brightness, 1.37, 0],
    [Op.contrast, 0.62, 0],
    [Op.saturation, 1.4, 0],
    [Op.hue, 0.09, 0],
    [Op.hue, -0.31, 0],
    [Op.grayscale, 0, 0],
  ];
  const blur: [number, number, number][] = [
    [Op.blur, 0.1, 1],
    [Op.blur, 0.5, 5],
    [Op.blur, 1.0, 7],
    [Op.blur, 1.7, 11],
    [Op.blur, 2.0, 13],
    [Op.blur, 6.0, 39],
  ];
  const o = pytorch(
    `
import torchvision.transforms.functional as TF
def norm(y): return TF.normalize(y, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
O['ops'] = norm(torch.stack([TF.adjust_brightness(x[0], 1.37), TF.adjust_contrast(x[1], 0.62), TF.adjust_saturation(x[2], 1.4),
    TF.adjust_hue(x[3], 0.09), TF.adjust_hue(x[4], -0.31), TF.rgb_to_grayscale(x[5], num_output_channels=3)]))
O['blur'] = norm(torch.cat([x[0:1]] + [TF.gaussian_blur(x[i:i+1], [k, k], [s, s]) for i, (s, k) in enumerate([(0.5, 5), (1.0, 7), (1.7, 11), (2.0, 13), (6.0, 39)], 1)]))
`,
    { x },
  );
  tidy(() => {
    for (const [label, input, scale] of [
      ['uint8 HWC', hwc, 1 / 255],
      ['float NCHW', x, 1],
    ] as const) {
      const out = empty([N, 3, H, W]);
      photometricInto(input, scale, program(ops), 1, MEAN, STD, out);
      assertClose(out, o.ops!, `ops (${label})`, { rtol: 0, atol: 1e-4 });
      photometricInto(input, scale, program(blur), 1, MEAN, STD, out);
      assertClose(out, o.blur!, `blur (${label})`, { rtol: 0, atol: 1e-4 });
    }
  });
  dispose([hwc, x, o]);
});

test('a chain of steps runs in the order given, in place', () => {
  const x = tidy(() =>
    tensor(pixels(), { shape: [N, H, W, 3], dtype: 'uint8' })
      .permute(0, 3, 1, 2)
      .contiguous()
      .float()
      .div(255),
  );
  const steps: [number, number, number][] = [];
  for (let i = 0; i < N; i++) {
    const s: [number, number, number][] = [
      [Op.hue, 0.05 * (i - 2), 0],
      [Op.contrast, 0.7 + 0.1 * i, 0],
      [Op.blur, 0.3 + 0.2 * i, 5],
      [Op.saturation, 0.5 + 0.2 * i, 0],
    ];
    steps.push(...(i % 2 ? s.reverse() : s));
  }
  const o = pytorch(
    `
import torchvision.transforms.functional as TF
out = []
for i in range(x.shape[0]):
    img = x[i]
    ops = [('h', 0.05 * (i - 2)), ('c', 0.7 + 0.1 * i), ('g', 0.3 + 0.2 * i), ('s', 0.5 + 0.2 * i)]
    for kind, v in (reversed(ops) if i % 2 else ops):
        if kind == 'h': img = TF.adjust_hue(img, v)
        if kind == 'c': img = TF.adjust_contrast(img, v)
        if kind == 's': img = TF.adjust_saturation(img, v)
        if kind == 'g': img = TF.gaussian_blur(img.unsqueeze(0), [5, 5], [v, v])[0]
    out.append(TF.normalize(img, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
O['y'] = torch.stack(out)
`,
    { x },
  );
  photometricInto(x, 1, program(steps), 4, MEAN, STD, x);
  assertClose(x, o.y!, 'chain', { rtol: 0, atol: 1e-4 });
  dispose([x, o]);
});

test('bad arguments are JS errors naming the problem', () => {
  tidy(() => {
    const x = empty([2, 3, 8, 8]);
    const none = new Float32Array(2 * 3);
    assert.throws(
      () => photometricInto(x, 1, new Float32Array(5), 1, MEAN, STD, x),
      /program length must be N·steps·3 = 6, got 5/,
    );
    assert.throws(
      () => photometricInto(x, 1, none, 1, MEAN, STD, empty([3, 3, 8, 8])),
      /input shape does not match out/,
    );
    assert.throws(() => photometricInto(x.transpose(2, 3), 1, none, 1, MEAN, STD, x), /contiguous/);
    assert.throws(() => photometricInto(x.double(), 1, none, 1, MEAN, STD, x), /uint8 N×H×W×3 or float32 N×3×H×W/);
    assert.throws(
      () =>
        photometricInto(
          x,
          1,
          program([
            [Op.blur, 1, 17],
            [0, 0, 0],
          ]),
          1,
          MEAN,
          STD,
          x,
        ),
      /odd kernel size < 2·min\(H, W\)/,
    );
    assert.throws(
      () =>
        photometricInto(
          x,
          1,
          program([
            [Op.blur, 1, 4],
            [0, 0, 0],
          ]),
          1,
          MEAN,
          STD,
          x,
        ),
      /odd kernel size/,
    );
    assert.throws(
      () =>
        photometricInto(
          x,
          1,
          program([
            [Op.hue, 0.7, 0],
            [0, 0, 0],
          ]),
          1,
          MEAN,
          STD,
          x,
        ),
      /hue factor must be in \[-0.5, 0.5\]/,
    );
    assert.throws(
      () =>
        photometricInto(
          x,
          1,
          program([
            [9, 0, 0],
            [0, 0, 0],
          ]),
          1,
          MEAN,
          STD,
          x,
        ),
      /unknown opcode 9/,
    );
    assert.throws(() => photometricInto(x, 1, none, 1, MEAN, [0.2, 0, 0.2], x), /std must be > 0/);
  });
});

test('cropResizeInto equals PIL crop + resize(BILINEAR) (+ mirror), shrinking and enlarging', async () => {
  const img = pixels().subarray(0, H * W * 3); // one 56×40 image, HWC
  const boxes = [
    { left: 0, top: 0, width: W, height: H },
    { left: 7, top: 3, width: 30, height: 22 },
    { left: 50, top: 30, width: 6, height: 10 },
    { left: 2, top: 5, width: 53, height: 9 },
    { left: 20, top: 0, width: 1, height: 40 },
  ];
  const flips = [false, true, false, true, false];
  const S = 24;
  const dst = new Uint8Array(boxes.length * S * S * 3);
  await cropResizeInto(
    img,
    W,
    H,
    boxes,
    flips,
    S,
    dst,
    boxes.map((_, i) => i * S * S * 3),
  );
  const o = pytorch(
    `
from PIL import Image
import numpy as np
im = Image.fromarray(x.numpy().astype(np.uint8))
out = []
for (l, t, w, h, f) in b.long().tolist():
    v = im.crop((l, t, l + w, t + h)).resize((${S}, ${S}), Image.BILINEAR)
    if f: v = v.transpose(Image.FLIP_LEFT_RIGHT)
    out.append(torch.from_numpy(np.asarray(v).copy()))
O['y'] = torch.stack(out).float()
`,
    {
      x: tensor(img, { shape: [H, W, 3], dtype: 'uint8' }),
      b: tensor(Int32Array.from(boxes.flatMap((bx, i) => [bx.left, bx.top, bx.width, bx.height, flips[i] ? 1 : 0])), {
        shape: [boxes.length, 5],
      }),
    },
  );
  tidy(() =>
    assertClose(tensor(dst, { shape: [boxes.length, S, S, 3], dtype: 'uint8' }).float(), o.y!, 'crop+resize vs PIL', {
      rtol: 0,
      atol: 0,
    }),
  );
  dispose(o);
  await assert.rejects(
    cropResizeInto(img, W, H, [{ left: 50, top: 0, width: 10, height: 5 }], [false], S, dst, [0]),
    /box 0 \(50, 0, 10×5\) is not inside the 56×40 image/,
  );
  await assert.rejects(
    cropResizeInto(img, W, H, [boxes[0]!], [false], S, dst, [dst.length - 10]),
    /offset .* is outside dst/,
  );
});
