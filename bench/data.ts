// Data-pipeline benchmark: images/s of two-crop augmented batches (batch 256), moco-ts vs the torchvision
// pipeline of ../shared/peer/torch_moco.py (same transforms, DataLoader with 2 workers), in the same run.
// Cases: CIFAR-10 32×32 JPEGs (colab demo aug), and aug+ 224×224 crops from ~500×375 JPEGs generated here from
// upsampled CIFAR images. Prints one JSON line.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { getNumThreads } from '../src/torch/index.js';
import { ImageFolder } from '../src/data/datasets/folder.js';
import { imagePaths } from '../src/data/walk.js';
import { Loader } from '../src/data/loader.js';
import { round, runPythonJson, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('data')) process.exit(0);

const CIFAR = process.env.MOCO_BENCH_CIFAR ?? join(process.cwd(), '..', 'shared', 'datasets', 'cifar10');
const BATCH = 256;
const BATCHES = Number(process.env.BENCH_BATCHES ?? 8); // timed batches, after one warm-up batch
const BIG_N = Number(process.env.BENCH_BIG_N ?? 768);

/** ~500×375 JPEGs: CIFAR test images upsampled (Lanczos) — real content, realistic decode cost. Reused across runs. */
async function makeBigJpegs(): Promise<string> {
  const root = join(tmpdir(), `moco-bench-500x375-${BIG_N}`);
  const dir = join(root, 'train', 'all');
  if (existsSync(dir) && readdirSync(dir).length >= BIG_N) return root;
  mkdirSync(dir, { recursive: true });
  const src = imagePaths([join(CIFAR, 'test')])
    .filter((_, i) => i % 7 === 0)
    .slice(0, BIG_N);
  await Promise.all(
    src.map((p, i) =>
      sharp(p)
        .resize(500, 375, { fit: 'fill', kernel: 'lanczos3' })
        .jpeg({ quality: 90 })
        .toFile(join(dir, `${String(i).padStart(5, '0')}.jpg`)),
    ),
  );
  return root;
}

async function ours(
  root: string,
  augment: 'cifar' | 'mocov2',
  workers: number,
): Promise<{ imgs_per_s: number; prepare_s: number; mode: string }> {
  const t0 = performance.now();
  const ds = new ImageFolder(join(root, 'train'));
  const loader = new Loader(ds, {
    batchSize: BATCH,
    shuffle: true,
    dropLast: true,
    seed: 0,
    augment,
    twoCrops: true,
    prefetch: 2,
    workers,
  });
  const src = await loader.prepare();
  const prepare = (performance.now() - t0) / 1000;
  let seen = -1,
    n = 0,
    t1 = 0;
  for (let epoch = 0; seen < BATCHES; epoch++) {
    for await (const b of loader.epoch(epoch)) {
      if (seen === -1) t1 = performance.now();
      else n += b.indices.length;
      b.dispose();
      if (++seen >= BATCHES) break;
    }
  }
  const dt = (performance.now() - t1) / 1000;
  await loader.close();
  ds.dispose();
  return { imgs_per_s: round(n / dt, 1), prepare_s: round(prepare, 2), mode: src.kind };
}

// The peer's transforms, verbatim in substance (torch_moco.py: aug list, Pair, ImageFolder, DataLoader).
const PY = `
import json, sys, time, random, os, torch, torchvision

from PIL import ImageFilter
root, size, blur, batches, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1', int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(os.cpu_count())
class Blur:
    def __init__(self, lo=0.1, hi=2.0): self.lo, self.hi = lo, hi
    def __call__(self, img): return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(self.lo, self.hi)))
class Pair:
    def __init__(self, t): self.t = t
    def __call__(self, x): return self.t(x), self.t(x)
T = torchvision.transforms
mean, std = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
aug = [T.RandomResizedCrop(size, scale=(0.2 if blur else 0.08, 1.0)), T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)]
if blur: aug.append(T.RandomApply([Blur()], p=0.5))
aug += [T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
ds = torchvision.datasets.ImageFolder(os.path.join(root, 'train'), Pair(T.Compose(aug)))
dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=2, drop_last=True, persistent_workers=True)
seen, n, t1 = -1, 0, 0.0
while seen < batches:
    for (q, k), y in dl:
        if seen == -1: t1 = time.perf_counter()
        else: n += q.shape[0]
        seen += 1
        if seen >= batches: break
print(json.dumps({'imgs_per_s': n / (time.perf_counter() - t1)}))
`;

function peer(root: string, size: number, blur: boolean): number {
  return round(
    runPythonJson<{ imgs_per_s: number }>(PY, [root, String(size), blur ? '1' : '0', String(BATCHES), String(BATCH)])
      .imgs_per_s,
    1,
  );
}

async function main(): Promise<void> {
  if (!existsSync(join(CIFAR, 'train')))
    throw new Error(`bench:data needs CIFAR-10 JPEGs at ${CIFAR} (set MOCO_BENCH_CIFAR)`);
  const big = await makeBigJpegs();
  // Ours in-thread (the default, workers: 0) and with 2 worker threads (the like-for-like of the DataLoader's 2
  // workers); on the shared 2-core machine either can win depending on what else runs.
  const c0 = await ours(CIFAR, 'cifar', 0);
  const c = await ours(CIFAR, 'cifar', 2);
  const cp = peer(CIFAR, 32, false);
  const b0 = await ours(big, 'mocov2', 0);
  const b = await ours(big, 'mocov2', 2);
  const bp = peer(big, 224, true);
  console.log(
    JSON.stringify({
      bench: 'data',
      batch: BATCH,
      timed_batches: BATCHES,
      two_crops: true,
      threads: getNumThreads(),
      uv_threadpool: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
      cifar32: {
        ours_imgs_per_s: c0.imgs_per_s,
        ours_workers2_imgs_per_s: c.imgs_per_s,
        torchvision_imgs_per_s: cp,
        ratio: round(c0.imgs_per_s / cp, 2),
        ratio_workers2: round(c.imgs_per_s / cp, 2),
        ours_source: c0.mode,
        ours_prepare_s: c0.prepare_s,
      },
      jpeg500x375_to224: {
        ours_imgs_per_s: b0.imgs_per_s,
        ours_workers2_imgs_per_s: b.imgs_per_s,
        torchvision_imgs_per_s: bp,
        ratio: round(b0.imgs_per_s / bp, 2),
        ratio_workers2: round(b.imgs_per_s / bp, 2),
        ours_source: b0.mode,
        images: BIG_N,
      },
      targets: { cifar32: 5, jpeg500x375_to224: 2 },
    }),
  );
}

await main();
