// The cached-feature linear protocol vs the same protocol written in PyTorch (torch.optim.SGD, F.cross_entropy)
// on the same features of a fixed encoder, with the same initial fc and the same sample order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dispose, manualSeed, tensor, tidy } from '../../src/torch/index.js';
import { createModel } from '../../src/models/index.js';
import { Encoder } from '../../src/eval/encoder.js';
import { extractFeatures } from '../../src/eval/features.js';
import {
  DivergedError,
  LinearHead,
  epochOrder,
  linclsLr,
  resolveSchedule,
  trainLinearOnFeatures,
} from '../../src/eval/linear-probe.js';
import { ImageFolder, Rng, Synthetic, type ImageDataset } from '../../src/data/index.js';
import { existsSync } from 'node:fs';

export const CIFAR = '/work/shared/datasets/cifar10';

/** 1200 train / 400 test CIFAR-10 images (seeded subsets) when the shared copy is there, else synthetic shapes. */
export function realOrSynthetic(nTrain = 1200, nVal = 400): [ImageDataset, ImageDataset] {
  if (!existsSync(`${CIFAR}/train`))
    return [new Synthetic({ n: nTrain, seed: 1 }), new Synthetic({ n: nVal, seed: 2 })];
  const pick = (dir: string, n: number): ImageDataset => {
    const all = new ImageFolder(`${CIFAR}/${dir}`);
    return all.select(new Rng(11, dir).permutation(all.length).slice(0, n).sort());
  };
  return [pick('train', nTrain), pick('test', nVal)];
}
import { pytorch } from '../helpers/pytorch.js';

const REF = `
W = W0.clone().requires_grad_(True); b = b0.clone().requires_grad_(True)
opt = torch.optim.SGD([W, b], lr=float(lrs[0]), momentum=0.9, weight_decay=0.0)
top1 = []
for e in range(orders.shape[0]):
    for g in opt.param_groups: g['lr'] = float(lrs[e])
    for s in range(0, X.shape[0], 256):
        idx = orders[e, s:s + 256]
        loss = F.cross_entropy(F.linear(X[idx], W, b), Y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        top1.append((F.linear(Xv, W, b).argmax(1) == Yv).float().mean() * 100)
O['top1'] = torch.stack(top1); O['W'] = W.detach()
`;

test('trainLinearOnFeatures reaches the accuracy of the same protocol in PyTorch (±1%)', async () => {
  manualSeed(7);
  // A fixed encoder: a width-16 CIFAR ResNet-18; BN statistics calibrated once so that features are O(1).
  const model = createModel('resnet18', { cifarStem: true, width: 16, numClasses: 10 });
  const [train, val] = realOrSynthetic();
  const enc = new Encoder(model, {
    file: 'test',
    arch: 'resnet18',
    cifarStem: true,
    width: 16,
    featureDim: 128,
    headKind: 'fc',
    headRole: 'classifier',
    headDim: 10,
    imageSize: 32,
    layout: 'torchvision',
    configFrom: 'weights',
    preset: null,
    epoch: null,
  });
  const pre = enc.preprocess();
  const tf = await extractFeatures((x) => enc.backbone(x), train, { ...pre, normalize: false });
  const vf = await extractFeatures((x) => enc.backbone(x), val, { ...pre, normalize: false });
  // Standardise the features (a fixed affine map): the test is about the optimiser and schedule, and the
  // random backbone's raw features are large and nearly collinear.
  const [X, Xv] = tidy(() => {
    const mu = tf.features.mean({ dim: 0, keepdim: true });
    const sd = tf.features.std({ dim: 0, keepdim: true }).add(1e-6);
    return [tf.features.sub(mu).div(sd), vf.features.sub(mu).div(sd)];
  });
  const epochs = 12;
  const sched = { epochs, lr: 0.3, schedule: [7, 10], seed: 5 };
  const init = LinearHead.init(128, 10, 5);
  const [W0, b0] = [init.weight.detach().clone(), init.bias.detach().clone()];
  const r = await trainLinearOnFeatures(X!, tf.labels!, Xv!, vf.labels!, { ...sched, init });
  const s = resolveSchedule(sched);
  const orders = tensor(Int32Array.from(Array.from({ length: epochs }, (_, e) => [...epochOrder(5, e, 1200)]).flat()), {
    shape: [epochs, 1200],
    dtype: 'int32',
  }).long();
  const lrs = tensor(Float64Array.from({ length: epochs }, (_, e) => linclsLr(s, e)));
  const ref = pytorch(REF, { X: X!, Y: tf.labels!, Xv: Xv!, Yv: vf.labels!, W0, b0, orders, lrs });
  const ours = r.history.map((m) => m.val.top1);
  const theirs = ref.top1!.toArray();
  assert.ok(ours[ours.length - 1]! > 18, `the probe learns something: ${ours}`);
  for (let e = 0; e < epochs; e++)
    assert.ok(Math.abs(ours[e]! - theirs[e]!) <= 1, `epoch ${e}: ${ours[e]} vs PyTorch ${theirs[e]}`);
  assert.equal(r.best.val.top1, Math.max(...ours));
  const want = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.03, 0.03, 0.03, 0.003, 0.003];
  r.history.forEach((m, e) => assert.ok(Math.abs(m.lr - want[e]!) < 1e-12, `lr of epoch ${e}: ${m.lr}`));
  dispose([X, Xv, tf, vf, W0, b0, orders, lrs, ref]);
  r.head.dispose();
  enc.dispose();
});

test('a diverging probe reports NaN with the lr, where it came from and a smaller one to try', async () => {
  const X = tensor(
    Float32Array.from({ length: 64 * 8 }, (_, i) => ((i * 7919) % 13) * 1e18),
    { shape: [64, 8] },
  );
  const y = tensor(
    Int32Array.from({ length: 64 }, (_, i) => i % 4),
    { dtype: 'int32' },
  ).long();
  await assert.rejects(
    trainLinearOnFeatures(X, y, X, y, { epochs: 3, lr: 30 }),
    (e: unknown) =>
      e instanceof DivergedError && /NaN\/Inf.*--lr 30 \(from the lr option\); try --lr 3\./.test(e.message),
  );
  dispose([X, y]);
});
