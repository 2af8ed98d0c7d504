// `moco serve` under load: throughput and p50/p99 latency of POST /v1/embed at 1, 8 and 32 concurrent clients
// (a bounded number of requests each) against 127.0.0.1, with batching across requests on and off, beside the
// same weights in a plain PyTorch HTTP loop (bench/py/serve_peer.py: http.server, torchvision preprocessing,
// one request at a time) in the same run. Also the cosine between the two services' vectors for one image.
// One JSON line.
//
//   npm run bench:serve -- --requests 200 --clients 1,8,32
//
// --engines libtorch,onnxruntime serves the checkpoint both ways (`moco serve --engine`): libtorch in a worker
// thread (the default) and onnxruntime on its ONNX export in a child process; each side also reports the server's
// memory (VmRSS once warm and VmHWM at the end, its child processes included).
//
// The model is a random-init ResNet-18 (width 64, as torchvision's, so PyTorch loads it unchanged) written once
// as a torchvision .pth; --cifar uses the 32-px CIFAR stem instead of 224-px ImageNet inputs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createModel } from '../src/models/index.js';
import { manualSeed } from '../src/torch/index.js';
import { saveTorch } from '../src/io/torch-save.js';
import { PYTHON, median, round, benchMatrix } from './common.js';

// --python A,B / --addon X,Y: one run per build and peer (see benchMatrix).
if (await benchMatrix('serve')) process.exit(0);

const root = resolve(new URL('../..', import.meta.url).pathname);
const { values: a } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    clients: { type: 'string', default: '1,8,32' },
    images: { type: 'string', default: '32' },
    cifar: { type: 'boolean', default: false },
    batch: { type: 'string', default: '32' },
    'batch-delay': { type: 'string', default: '5' },
    threads: { type: 'string', default: String(availableParallelism()) },
    python: { type: 'string', default: PYTHON },
    'no-peer': { type: 'boolean', default: false },
    engines: { type: 'string', default: 'libtorch' },
  },
});
const requests = pos('requests', a.requests!);
const clients = a.clients!.split(',').map((c) => pos('clients', c));
const threads = pos('threads', a.threads!);
const size = a.cifar ? 32 : 224;

function pos(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench/serve: --${name} must be a positive integer, got '${v}'`);
  return n;
}

/** Starts a server process and resolves with its base URL, read from the line its `pattern` matches. */
function start(
  cmd: string,
  args: string[],
  pattern: RegExp,
  out: 'stdout' | 'stderr',
): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((res, rej) => {
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString();
      const m = pattern.exec(text);
      if (m) {
        proc[out]!.off('data', onData);
        res({ proc, url: m[1]!.startsWith('http') ? m[1]! : `http://127.0.0.1:${m[1]}` });
      }
    };
    proc[out]!.on('data', onData);
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    proc.on('exit', (code) =>
      rej(new Error(`${cmd} ${args.join(' ')} exited (${code}) before it was ready: ${err.slice(-2000)}`)),
    );
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await done;
}

interface Load {
  clients: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** `requests` POSTs of the images in turn, from `c` concurrent clients (each one request at a time). */
async function load(url: string, images: Buffer[], c: number): Promise<Load> {
  const lat: number[] = [];
  let next = 0,
    errors = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      for (let i = next++; i < requests; i = next++) {
        const t = performance.now();
        const r = await fetch(`${url}/v1/embed`, {
          method: 'POST',
          headers: { 'content-type': 'image/jpeg' },
          body: new Uint8Array(images[i % images.length]!),
        });
        await r.arrayBuffer();
        if (r.status !== 200) errors++;
        lat.push(performance.now() - t);
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const s = [...lat].sort((x, y) => x - y);
  return {
    clients: c,
    requests,
    rps: round(requests / wall, 2),
    p50Ms: round(median(s), 1),
    p99Ms: round(s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!, 1),
    errors,
  };
}

/** MiB of a process and its child processes: resident now, and peak resident (Linux /proc). */
function memoryOf(pid: number): { rssMiB: number; peakMiB: number } {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      for (const t of readdirSync(`/proc/${pids[i]}/task`))
        pids.push(
          ...readFileSync(`/proc/${pids[i]}/task/${t}/children`, 'utf8')
            .trim()
            .split(/\s+/)
            .filter(Boolean)
            .map(Number),
        );
    } catch {
      /* exited */
    }
  }
  let rss = 0,
    peak = 0;
  for (const p of pids) {
    try {
      const st = readFileSync(`/proc/${p}/status`, 'utf8');
      rss += Number(/VmRSS:\s+(\d+)/.exec(st)?.[1] ?? 0);
      peak += Number(/VmHWM:\s+(\d+)/.exec(st)?.[1] ?? 0);
    } catch {
      /* exited */
    }
  }
  return { rssMiB: round(rss / 1024, 1), peakMiB: round(peak / 1024, 1) };
}

async function vectorOf(url: string, img: Buffer): Promise<number[]> {
  const r = await fetch(`${url}/v1/embed`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg' },
    body: new Uint8Array(img),
  });
  return ((await r.json()) as { vectors: number[][] }).vectors[0]!;
}

const dir = mkdtempSync(join(tmpdir(), 'moco-bench-serve-'));
try {
  manualSeed(0);
  const m = createModel('resnet18', { cifarStem: a.cifar });
  const ckpt = join(dir, 'resnet18.pth');
  saveTorch(ckpt, m.stateDict());
  m.dispose();
  // Photos-like inputs: smooth gradients plus noise, 320×240 JPEGs (decode + resize + crop on every request).
  const images = await Promise.all(
    Array.from({ length: pos('images', a.images!) }, async (_, i) => {
      const w = 320,
        h = 240;
      const px = Buffer.alloc(w * h * 3);
      for (let j = 0; j < w * h; j++) {
        const x = j % w,
          y = Math.floor(j / w);
        px[j * 3] = (x + i * 17) % 256;
        px[j * 3 + 1] = (y * 2 + i * 31) % 256;
        px[j * 3 + 2] = ((x ^ y) + i * 7 + ((j * 2654435761) >>> 28)) % 256;
      }
      return sharp(px, { raw: { width: w, height: h, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer();
    }),
  );
  const cli = join(root, 'dist', 'src', 'cli', 'main.js');
  const result: Record<string, unknown> = {
    bench: 'serve',
    model: `resnet18${a.cifar ? ' (CIFAR stem)' : ''}, random init`,
    inputPx: size,
    requests,
    clients,
    threads,
    cores: availableParallelism(),
  };
  const sides: Record<string, Load[]> = {};
  const vectors: Record<string, number[]> = {};
  const memory: Record<
    string,
    { warm: { rssMiB: number; peakMiB: number }; end: { rssMiB: number; peakMiB: number } }
  > = {};
  const engines = a.engines!.split(',');
  // The first engine's sides keep the plain names (batched, unbatched); the others are prefixed (onnxruntime-batched).
  const sideName = (engine: string, name: string): string => (engine === engines[0] ? name : `${engine}-${name}`);
  for (const engine of engines) {
    for (const [plain, batch] of [
      ['batched', a.batch!],
      ['unbatched', '1'],
    ] as const) {
      const name = sideName(engine, plain);
      const { proc, url } = await start(
        process.execPath,
        [
          cli,
          'serve',
          '--pretrained',
          ckpt,
          '--engine',
          engine,
          '--port',
          '0',
          '--batch',
          batch,
          '--batch-delay',
          a['batch-delay']!,
          '--threads',
          String(threads),
          '--log',
          'off',
          '--max-loop-delay',
          '0',
          '--queue',
          '4096',
        ],
        /ready: .* page at (http:\/\/127\.0\.0\.1:\d+)\//,
        'stderr',
      );
      try {
        vectors[name] = await vectorOf(url, images[0]!); // also warms up
        const warm = memoryOf(proc.pid!);
        sides[name] = [];
        for (const c of clients) sides[name]!.push(await load(url, images, c));
        memory[name] = { warm, end: memoryOf(proc.pid!) };
      } finally {
        await stop(proc);
      }
    }
  }
  if (!a['no-peer']) {
    const { proc, url } = await start(
      a.python!,
      [
        join(root, 'bench', 'py', 'serve_peer.py'),
        ckpt,
        '--size',
        String(size),
        '--threads',
        String(threads),
        ...(a.cifar ? ['--cifar'] : []),
      ],
      /READY (\d+)/,
      'stdout',
    );
    try {
      vectors.pytorch = await vectorOf(url, images[0]!);
      sides.pytorch = [];
      for (const c of clients) sides.pytorch.push(await load(url, images, c));
    } finally {
      await stop(proc);
    }
  }
  result.results = sides;
  result.memory = memory;
  const at = (side: string, c: number): number | undefined => sides[side]?.find((l) => l.clients === c)?.rps;
  const top = Math.max(...clients);
  result.batchingGain = round((at('batched', top) ?? NaN) / (at('unbatched', top) ?? NaN), 3);
  if (sides.pytorch) {
    result.vsPytorch = round((at('batched', top) ?? NaN) / (at('pytorch', top) ?? NaN), 3);
    const v = vectors.batched!,
      p = vectors.pytorch!;
    let d = 0,
      nv = 0,
      np = 0;
    v.forEach((x, i) => {
      d += x * p[i]!;
      nv += x * x;
      np += p[i]! * p[i]!;
    });
    result.cosineToPytorch = round(d / Math.sqrt(nv * np), 5);
  }
  console.log(JSON.stringify(result));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
