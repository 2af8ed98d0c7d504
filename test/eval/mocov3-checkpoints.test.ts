// Official MoCo v3 pre-training checkpoints, ResNet-50 and ViT-Small, written by PyTorch with builder.py's key
// names (base_encoder with its projector, momentum_encoder, predictor), embed a folder through `moco embed` with
// no other flag exactly as PyTorch's backbone computes it after torchvision's evaluation transform.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { interop } from '../helpers/interop.js';
import { pytorch, repoRoot, tmpDir } from '../helpers/pytorch.js';
import { PY_VIT } from '../helpers/vit-ref.js';
import { zeros, type Tensor } from '../../src/torch/index.js';

let dir = '';
let images = '';
const paths: string[] = [];

before(async () => {
  dir = tmpDir('moco-v3-ckpt-');
  images = join(dir, 'images', 'class_a');
  mkdirSync(images, { recursive: true });
  // Sides whose shorter one is already Resize(256)'s target: the comparison is of the encoders, not of two
  // resampling filters (those are compared in the augmentation tests).
  const sizes: [number, number][] = [
    [256, 256],
    [320, 256],
    [256, 288],
  ];
  let seed = 7;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (const [i, [w, h]] of sizes.entries()) {
    // Smooth colour fields plus noise: content at every scale, different in every image.
    const px = Buffer.alloc(w * h * 3);
    const f = [rnd() * 0.1, rnd() * 0.1, rnd() * 0.1];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let c = 0; c < 3; c++)
          px[(y * w + x) * 3 + c] = Math.round(
            127 + 80 * Math.sin(f[c]! * x + (c + 1) * y * 0.03 + i) + 40 * (rnd() - 0.5),
          );
      }
    }
    const p = join(images, `${i}.png`);
    await sharp(px, { raw: { width: w, height: h, channels: 3 } })
      .png()
      .toFile(p);
    paths.push(p);
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** `moco embed` of the folder with only --pretrained: path → unit vector. */
function embed(ckpt: string): Map<string, number[]> {
  const out = join(dir, 'emb.jsonl');
  execFileSync(
    process.execPath,
    [
      join(repoRoot(), 'dist', 'src', 'cli', 'main.js'),
      'embed',
      join(dir, 'images'),
      '--pretrained',
      ckpt,
      '--out',
      out,
    ],
    { stdio: 'pipe' },
  );
  const rows = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { path: string; embedding: number[] });
  return new Map(rows.map((r) => [r.path, r.embedding]));
}

function checkCosines(ours: Map<string, number[]>, ref: Tensor, dim: number, what: string): void {
  assert.deepEqual(ref.shape, [paths.length, dim]);
  const feat = ref.data() as Float32Array;
  assert.equal(ours.size, paths.length);
  for (const [i, p] of paths.entries()) {
    const v = ours.get(p);
    assert.ok(v, `${what}: ${p} embedded`);
    assert.equal(v.length, dim);
    const r = feat.subarray(i * dim, (i + 1) * dim);
    let dot = 0;
    let nr = 0;
    for (let j = 0; j < dim; j++) {
      dot += v[j]! * r[j]!;
      nr += r[j]! * r[j]!;
    }
    const cos = dot / Math.sqrt(nr);
    assert.ok(cos >= 0.9999, `${what}: ${p}: cosine ${cos} with PyTorch's backbone features`);
  }
}

/** torchvision's evaluation transform of `paths`, stacked, as Python source defining `x`. */
const PY_IMAGES = (): string => `
import torchvision.transforms as T
from PIL import Image
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
x = torch.stack([tf(Image.open(p).convert('RGB')) for p in ${JSON.stringify(paths)}])
`;

test('an official MoCo v3 ViT-Small checkpoint (224 px, patch 16) embeds as PyTorch computes it', () => {
  const ckpt = join(dir, 'vit-s-300ep.pth.tar');
  const ref = pytorch(`${PY_VIT}${PY_IMAGES()}
import copy
from builder import mlp
torch.manual_seed(0)
base = ViT(224, 16, 384, 12, 12, True)
# Away from the init's LayerNorms at 1/0, zero biases and ~0 cls token, so that every weight shows in the output.
with torch.no_grad():
    for k, p in base.named_parameters():
        if k.endswith('bias') or k == 'cls_token': p.uniform_(-0.2, 0.2)
        elif 'norm' in k: p.uniform_(0.5, 1.5)
base.eval()
with torch.no_grad(): O['feat'] = base(x)
# builder.py's MoCo_ViT: the projector is the ViT's head (3 layers, last BN), the predictor 2 layers with last BN.
base.head = mlp(3, 384, 1024, 256, True)
sd = {}
for prefix, m in [('base_encoder', base), ('momentum_encoder', copy.deepcopy(base)), ('predictor', mlp(2, 256, 1024, 256, True))]:
    for k, v in m.state_dict().items(): sd['module.' + prefix + '.' + k] = v
torch.save({'epoch': 300, 'arch': 'vit_small', 'state_dict': sd, 'optimizer': {'state': {}, 'param_groups': []}}, ${JSON.stringify(ckpt)})
`);
  checkCosines(embed(ckpt), ref.feat!, 384, 'ViT-S');
});

test('an official MoCo v3 ResNet-50 checkpoint embeds as PyTorch computes it', () => {
  const ckpt = join(dir, 'r-50-100ep.pth.tar');
  interop('save-mocov3', 'resnet50', ckpt);
  const ref = pytorch(`${PY_IMAGES()}
import torchvision
sd = torch.load(${JSON.stringify(ckpt)}, map_location='cpu')['state_dict']
p = 'module.base_encoder.'
m = torchvision.models.resnet50()
m.fc = nn.Identity()
m.load_state_dict({k[len(p):]: v for k, v in sd.items() if k.startswith(p) and not k.startswith(p + 'fc.')}, strict=True)
m.eval()
with torch.no_grad(): O['feat'] = m(x)
`);
  checkCosines(embed(ckpt), ref.feat!, 2048, 'ResNet-50');
});

test('our own MoCo v3 ViT run loads as an encoder: its kNN accuracy is the one the run monitored', async () => {
  const { pretrain, resolveConfig } = await import('../../src/train/index.js');
  const { knnEvaluate, loadEncoder } = await import('../../src/eval/index.js');
  const { openDataset } = await import('../../src/data/index.js');
  const c = resolveConfig('synthetic:64', {
    preset: 'mocov3-vit-cifar',
    vitDepth: 1,
    dim: 16,
    mlpDim: 32,
    batchSize: 16,
    epochs: 1,
    knnEvery: 1,
    knnK: 10,
    knnFeature: 'backbone',
    printFreq: 1000,
    threads: 2,
    seed: 3,
    out: join(dir, 'vit-run'),
  });
  const run = await pretrain(c, { quiet: true });
  const enc = loadEncoder(run.runDir);
  try {
    assert.equal(enc.info.arch, 'vit_tiny');
    assert.equal(enc.info.imageSize, 32);
    assert.equal(enc.info.featureDim, 192);
    assert.equal(enc.preprocess().augment, 'cifar-eval');
    const knn = await knnEvaluate(
      enc,
      openDataset('synthetic:64', { seed: c.seed }),
      openDataset('synthetic:64', { split: 'test', seed: c.seed }),
      { k: 10, t: c.knnT },
    );
    assert.ok(run.knnTop1 !== undefined);
    assert.ok(Math.abs(knn.top1 - run.knnTop1) < 1e-9, `moco knn ${knn.top1} vs the run's monitor ${run.knnTop1}`);
    const x = zeros([1, 3, 32, 32]);
    assert.throws(
      () => enc.encode(x, 'regions'),
      /--feature regions needs a ResNet encoder; .* is a Vision Transformer \(vit_tiny\)/,
    );
    x.dispose();
  } finally {
    enc.dispose();
  }
});
