// kNN and cached-feature linear classification of one checkpoint, in moco-ts and in plain PyTorch/torchvision
// on the same images (PIL decode, ToTensor, Normalize), printed as one JSON line. Acceptance of issue 6:
// |Δ kNN top-1| ≤ 0.5, |Δ linear top-1| ≤ 1.
//   node dist/bench/eval-parity.js [--pretrained CKPT] [--data DIR] [--train N] [--test M] [--epochs E] [--lr LR]
// Without --pretrained a random-init CIFAR ResNet-18 is written to a temp dir and used.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ImageFolder, Rng, type ImageDataset } from '../src/data/index.js';
import { createModel, projectionHead } from '../src/models/index.js';
import { manualSeed } from '../src/torch/index.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { knnEvaluate, lincls, loadEncoder } from '../src/eval/index.js';
import { runPythonJson, round, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('eval-parity')) process.exit(0);

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const data = arg('data', '/work/shared/datasets/cifar10');
const nTrain = Number(arg('train', '5000'));
const nTest = Number(arg('test', '1000'));
const epochs = Number(arg('epochs', '30'));
const tmp = mkdtempSync(join(tmpdir(), 'moco-eval-parity-'));

function pick(dir: string, n: number): ImageDataset & { paths: readonly string[]; labels: Int32Array } {
  const all = new ImageFolder(join(data, dir));
  const idx =
    n >= all.length
      ? Array.from({ length: all.length }, (_, i) => i)
      : [...new Rng(0, 'bench', dir).permutation(all.length).slice(0, n)].sort((a, b) => a - b);
  return all.select(idx) as ImageDataset & { paths: readonly string[]; labels: Int32Array };
}

const PY = String.raw`
import sys, json, math, torch, torchvision, torch.nn as nn, torch.nn.functional as F

from PIL import Image
sys.path.insert(0, sys.argv[3]); from st import load
cfg = json.load(open(sys.argv[1])); torch.set_num_threads(int(sys.argv[2]))
tensors, meta = load(cfg['ckpt'])
sd = {k[len('encoder_q.'):]: v for k, v in tensors.items() if k.startswith('encoder_q.')} or tensors
m = torchvision.models.resnet18()
m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity(); m.fc = nn.Identity()
m.load_state_dict({k: v for k, v in sd.items() if not k.startswith('fc.')}); m.eval()
tf = torchvision.transforms.Compose([torchvision.transforms.ToTensor(), torchvision.transforms.Normalize([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])])
def feats(paths):
    out = []
    with torch.no_grad():
        for s in range(0, len(paths), 256):
            x = torch.stack([tf(Image.open(p).convert('RGB')) for p in paths[s:s + 256]])
            out.append(m(x))
    return torch.cat(out)
Xb, Xq = feats(cfg['train']), feats(cfg['test'])
yb, yq = torch.tensor(cfg['trainLabels']), torch.tensor(cfg['testLabels'])
fb, fq = F.normalize(Xb, dim=1), F.normalize(Xq, dim=1)
sim = fq @ fb.t(); w, i = sim.topk(200, dim=1); lab = yb[i]
scores = torch.zeros(len(yq), 10).scatter_add_(1, lab, (w / 0.1).exp())
knn = (scores.argmax(1) == yq).float().mean().item() * 100
torch.manual_seed(0)
W = (torch.randn(10, Xb.shape[1]) * 0.01).requires_grad_(); b = torch.zeros(10, requires_grad=True)
opt = torch.optim.SGD([W, b], lr=cfg['lr'], momentum=0.9, weight_decay=0)
E = cfg['epochs']; best = 0; last = 0
for e in range(E):
    for g in opt.param_groups: g['lr'] = cfg['lr'] * 0.1 ** sum(e >= x for x in [int(E * 0.6), int(E * 0.8)])
    perm = torch.randperm(len(yb))
    for s in range(0, len(yb), 256):
        j = perm[s:s + 256]; loss = F.cross_entropy(F.linear(Xb[j], W, b), yb[j]); opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad(): last = (F.linear(Xq, W, b).argmax(1) == yq).float().mean().item() * 100
    best = max(best, last)
print(json.dumps({'knn_top1': knn, 'linear_best': best, 'linear_last': last}))
`;

try {
  let ckpt = arg('pretrained', '');
  if (!ckpt) {
    manualSeed(0);
    const m = createModel('resnet18', { cifarStem: true });
    m.replaceModule('fc', projectionHead('mlp', m.featureDim, 128));
    ckpt = join(tmp, 'random-init.safetensors');
    saveSafetensors(ckpt, new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t])), {
      moco: JSON.stringify({ arch: 'resnet18', cifarStem: true, width: 64, imageSize: 32, preset: 'cifar' }),
    });
    m.dispose();
  }
  const lr = Number(arg('lr', arg('pretrained', '') ? '30' : '0.1'));
  const train = pick('train', nTrain),
    test = pick('test', nTest);
  const enc = loadEncoder(ckpt);
  const t0 = performance.now();
  const knn = await knnEvaluate(enc, train, test, { k: 200, t: 0.1 });
  const lin = await lincls(enc, train, test, {
    cacheFeatures: true,
    epochs,
    lr,
    schedule: [Math.floor(epochs * 0.6), Math.floor(epochs * 0.8)],
  });
  const oursS = (performance.now() - t0) / 1000;
  enc.dispose();
  const cfgFile = join(tmp, 'cfg.json');
  writeFileSync(
    cfgFile,
    JSON.stringify({
      ckpt: resolve(ckpt),
      lr,
      epochs,
      train: train.paths,
      test: test.paths,
      trainLabels: [...train.labels],
      testLabels: [...test.labels],
    }),
  );
  const t1 = performance.now();
  const py = runPythonJson<{ knn_top1: number; linear_best: number; linear_last: number }>(PY, [
    cfgFile,
    String(2),
    resolve('test/py'),
  ]);
  const torchS = (performance.now() - t1) / 1000;
  const dKnn = knn.top1 - py.knn_top1,
    dLin = lin.best!.top1 - py.linear_best;
  console.log(
    JSON.stringify({
      bench: 'eval-parity',
      checkpoint: arg('pretrained', '') || 'random-init resnet18 (CIFAR stem)',
      train: train.length,
      test: test.length,
      epochs,
      lr,
      ours: {
        knn_top1: round(knn.top1, 2),
        linear_best: round(lin.best!.top1, 2),
        linear_last: round(lin.last.top1, 2),
        seconds: round(oursS, 1),
      },
      pytorch: {
        knn_top1: round(py.knn_top1, 2),
        linear_best: round(py.linear_best, 2),
        linear_last: round(py.linear_last, 2),
        seconds: round(torchS, 1),
      },
      delta: { knn: round(dKnn, 2), linear: round(dLin, 2) },
      pass: Math.abs(dKnn) <= 0.5 && Math.abs(dLin) <= 1,
    }),
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
