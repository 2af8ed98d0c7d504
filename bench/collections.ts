// Collections at scale, one JSON line, everything on this machine in one run:
// - embedding throughput of `moco index` against the equivalent PyTorch loop (bench/py/embed_peer.py: torchvision
//   ImageFolder + DataLoader(2 workers) + the same checkpoint, batch 64) on CIFAR-10 test JPEGs, with the mean
//   cosine between the two sides' vectors of each image. Both sides run with the same libtorch threads, back to
//   back. Three windows, so that like is compared with like:
//   · embed.ratio (the headline): files → vectors on both sides. Ours: indexImages' embedMs (from the list of
//     files to embed to the last vector: decode workers' start, decode, forward, normalise; chunk commits run
//     alongside in LanceDB's threads); the peer's: its loop (DataLoader workers' start, decode, forward,
//     normalise), without interpreter start, imports, model build and the ImageFolder scan (as ours leaves out
//     process start, the encoder load and the folder listing);
//   · commandRatio: our whole indexImages call (also reading the table, the stat+SHA-256 pass over the files and
//     waiting for the last commit, work the peer does not do) against the peer's loop;
//   · processWallRatio: process start to exit of each (ours also loads LanceDB and builds the ANN index when due;
//     the peer also writes its features file).
//   On the shared 2-core machine other engineers' jobs move every absolute figure: read the ratios.

// - per synthetic size (clustered 128-d vectors, bench/collections-synth.ts, its own process): append time, index
//   build time, query latency p50/p99 of the ANN index and of the flat scan, recall@10 of the ANN against the flat
//   scan, the process's peak RSS (and that of a second run that only writes and indexes) against the bytes of the
//   vectors as one array; dedup time (exact candidates on libtorch, complete linkage) at --dedup-at rows.
//   node dist/bench/collections.js [--images 2000] [--sizes 10000,30000,100000,1000000] [--pretrained CKPT] [--threads 2]
//   (`--sizes ''`: the embedding part only)
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Collection } from '../src/collections/index.js';
import { loadCheckpointWeights } from '../src/eval/index.js';
import { createModel, projectionHead } from '../src/models/index.js';
import { saveSafetensors, loadSafetensors } from '../src/io/safetensors.js';
import { manualSeed } from '../src/torch/index.js';
import { PYTHON, lastJson, round, runMeasured, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('collections')) process.exit(0);

const root = resolve(new URL('../..', import.meta.url).pathname);
const { values: a } = parseArgs({
  options: {
    images: { type: 'string', default: '2000' },
    sizes: { type: 'string', default: '10000,30000,100000,1000000' },
    'dedup-at': { type: 'string', default: '100000' },
    pretrained: { type: 'string' },
    threads: { type: 'string', default: String(availableParallelism()) },
    data: { type: 'string', default: resolve(root, '..', 'shared', 'datasets', 'cifar10', 'test') },
  },
});
const nImages = Number(a.images);
const threads = Number(a.threads);
const tmp = mkdtempSync(join(tmpdir(), 'moco-bench-collections-'));
try {
  // The encoder: the given checkpoint, or a random-init CIFAR ResNet-18 of width 16 (throughput does not depend on training).
  let ckpt = a.pretrained;
  if (!ckpt) {
    manualSeed(0);
    const m = createModel('resnet18', { cifarStem: true, width: 16 });
    m.replaceModule('fc', projectionHead('mlp', m.featureDim, 128));
    ckpt = join(tmp, 'enc.safetensors');
    saveSafetensors(ckpt, new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t])));
    m.dispose();
  }
  const { weights } = loadCheckpointWeights(ckpt);
  const tv = join(tmp, 'torchvision.safetensors');
  saveSafetensors(tv, weights.backbone);
  for (const t of [...weights.backbone.values(), ...weights.head.values()]) t.dispose();

  // The same N CIFAR-10 test images for both sides, as links in an ImageFolder layout (never copies).
  const img = join(tmp, 'img');
  const classes = readdirSync(a.data!).sort();
  const per = Math.ceil(nImages / classes.length);
  let n = 0;
  for (const c of classes) {
    mkdirSync(join(img, c), { recursive: true });
    for (const f of readdirSync(join(a.data!, c)).sort().slice(0, per)) {
      if (n < nImages) {
        symlinkSync(join(a.data!, c, f), join(img, c, f));
        n++;
      }
    }
  }
  const db = join(tmp, 'db');
  const tOurs = performance.now();
  const ours = await runMeasured(
    process.execPath,
    [
      join(root, 'dist', 'src', 'cli', 'main.js'),
      'index',
      img,
      '--pretrained',
      ckpt,
      '--db',
      db,
      '--threads',
      String(threads),
    ],
    { env: { ...process.env, MOCO_NO_CACHE: '1' } },
  );
  if (ours.code !== 0) throw new Error(`moco index failed: ${ours.stderr.slice(-2000)}`);
  const oursWallS = (performance.now() - tOurs) / 1000;
  const oj = lastJson<{ rows: number; ms: number; scanMs: number; embedMs: number; commitWaitMs: number }>(
    ours.stdout,
    'moco index',
  );
  const peerOut = join(tmp, 'peer.safetensors');
  const tPeer = performance.now();
  const peer = await runMeasured(PYTHON, [
    join(root, 'bench', 'py', 'embed_peer.py'),
    img,
    tv,
    '--threads',
    String(threads),
    '--out',
    peerOut,
  ]);
  if (peer.code !== 0) throw new Error(`embed_peer.py failed: ${peer.stderr.slice(-2000)}`);
  const peerWallS = (performance.now() - tPeer) / 1000;
  const pj = lastJson<{ images: number; seconds: number; imagesPerS: number }>(peer.stdout, 'embed_peer.py');
  // Row by row agreement: the peer's ImageFolder order is class then file name, as our sorted paths.
  const coll = await Collection.open(db);
  const all = await coll.readAll();
  coll.close();
  const order = all.rows.map((r, i) => [r.path, i] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
  const pf = loadSafetensors(peerOut).tensors.get('features')!;
  const pv = pf.data() as Float32Array;
  const dim = pf.shape[1]!;
  let cosSum = 0;
  order.forEach(([, i], r) => {
    let s = 0;
    for (let j = 0; j < dim; j++) s += all.vectors[i * dim + j]! * pv[r * dim + j]!;
    cosSum += s;
  });
  pf.dispose();

  const synth: Record<string, unknown>[] = [];
  for (const size of a
    .sizes!.split(',')
    .filter((x) => x.trim())
    .map(Number)) {
    const args = [
      join(root, 'dist', 'bench', 'collections-synth.js'),
      '--rows',
      String(size),
      '--dim',
      '128',
      '--queries',
      size >= 1e6 ? '100' : '200',
      '--flat-queries',
      size >= 1e6 ? '20' : '50',
    ];
    if (size === Number(a['dedup-at'])) args.push('--dedup');
    const r = await runMeasured(process.execPath, args);
    if (r.code !== 0) throw new Error(`collections-synth --rows ${size} failed: ${r.stderr.slice(-2000)}`);
    const j = lastJson<{ vectorBytes: number }>(r.stdout, 'collections-synth');
    // Memory of writing and indexing alone, apart from the queries (whose flat scans read the whole table).
    const b = await runMeasured(process.execPath, [args[0]!, '--rows', String(size), '--dim', '128', '--build-only']);
    if (b.code !== 0) throw new Error(`collections-synth --rows ${size} --build-only failed: ${b.stderr.slice(-2000)}`);
    synth.push({
      ...j,
      peakRssMb: round(r.peakRssMb, 1),
      buildPeakRssMb: round(b.peakRssMb, 1),
      vectorsMb: round(j.vectorBytes / 2 ** 20, 1),
    });
    console.error(`bench/collections: ${size} rows: ${JSON.stringify(synth[synth.length - 1])}`);
  }
  console.log(
    JSON.stringify({
      bench: 'collections',
      threads,
      images: oj.rows,
      embed: {
        oursLoopImagesPerS: round(oj.rows / (oj.embedMs / 1000), 1),
        pytorchImagesPerS: round(pj.imagesPerS, 1),
        ratio: round(oj.rows / (oj.embedMs / 1000) / pj.imagesPerS, 3),
        mocoIndexImagesPerS: round(oj.rows / (oj.ms / 1000), 1),
        commandRatio: round(oj.rows / (oj.ms / 1000) / pj.imagesPerS, 3),
        oursS: {
          scan: round(oj.scanMs / 1000, 2),
          embed: round(oj.embedMs / 1000, 2),
          commitWait: round(oj.commitWaitMs / 1000, 2),
          indexImages: round(oj.ms / 1000, 2),
          process: round(oursWallS, 2),
        },
        pytorchS: { loop: round(pj.seconds, 2), process: round(peerWallS, 2) },
        processWallRatio: round(peerWallS / oursWallS, 3),
        meanCosineOursVsPytorch: round(cosSum / order.length, 6),
      },
      synthetic: synth,
    }),
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
