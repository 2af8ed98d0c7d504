// The pre-flight memory check of `moco pretrain`: a model of one training step's peak host memory, built from a
// traced forward of one image at the run's arch, size and precision, compared with the memory this process can
// reach before any step runs. Measured against real runs in docs/memory.md.
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { autocast, createdBytes, enableGrad, getRngState, rand, setRngState, tidy } from '../torch/index.js';
import { contrastiveEncoder, memoryBankBytes, mocov3Encoder, recipe } from '../moco/index.js';
import type { Backbone } from '../models/index.js';
import type { PretrainConfig } from './config.js';

/**
 * How far a measured peak may lie from {@link estimatePeakMemory}'s figure: measured / estimate is within
 * [1 / ESTIMATE_FACTOR, ESTIMATE_FACTOR] on the runs of docs/memory.md (ResNet-18 CIFAR stem, ResNet-50).
 */
export const ESTIMATE_FACTOR = 1.25;

/**
 * Backward's working memory (the activation gradients in flight, the convolutions' scratch space), in units of one
 * image's saved activations: one backward a step, whether one forward or two kept activations for it. Fitted on
 * the per-image slopes of docs/memory.md (ResNet-50 at 64 and 224 px, MoCo and end-to-end).
 */
const BACKWARD_OVERHEAD = 0.4;

/** The parts of a run's estimated peak host memory, in bytes. */
export interface MemoryEstimate {
  /** The estimated peak resident memory of this process, bytes (the sum of the parts). */
  peakBytes: number;
  /** Bytes one image's forward keeps for backward (traced at the run's arch, image size and precision). */
  activationBytesPerImage: number;
  /** Images a step's forward with gradients sees in this process (batch share × views with gradients). */
  imagesWithGrad: number;
  parts: {
    /** What this process holds already: runtime, libtorch, the dataset if decoded into memory (RSS now). */
    process: number;
    /** Saved activations of the forward(s) with gradients, and backward's working memory. */
    activations: number;
    /** Encoder weights (query and key encoders for MoCo), gradients, SGD momentum and weight-decayed gradients. */
    parameters: number;
    /** MoCo's queue and its per-step snapshot, or the memory bank and the negatives drawn from it. */
    negatives: number;
    /** The logits, their softmax and gradient (N × (1 + K) floats each). */
    logits: number;
    /** Augmented view batches in memory: the one training and those prefetched. */
    batches: number;
  };
}

/** What the estimate needs to know about the data and the process, beyond the config. */
export interface MemoryContext {
  /** Training images (the memory bank's rows, the kNN monitor's bank). */
  trainImages: number;
  /** Whether the loader reads image files (batches are then prefetched by workers). */
  files: boolean;
  /** Processes sharing the batch. Default 1. */
  worldSize?: number;
  /** Bytes the process holds now; default its resident set (process.memoryUsage.rss()). */
  processBytes?: number;
}

/** What a traced forward of the run's encoder tells about its memory. */
export interface EncoderTrace {
  /** Bytes one image's forward keeps alive for backward. */
  activationBytesPerImage: number;
  /** Bytes of the trainable weights (one copy). */
  parameterBytes: number;
}

const traced = new Map<string, EncoderTrace>();

/**
 * Traces one image's forward through the run's encoder with gradients: every output it keeps alive for backward,
 * each storage once (in-place ReLUs share their input's), and the weights' bytes. Once per arch, width, stem,
 * head, image size and precision in this process. The trace encoder uses plain BN in eval mode (the split BN of
 * ShuffleBN emulation produces outputs of the same sizes).
 */
export function traceEncoder(
  c: Pick<PretrainConfig, 'arch' | 'width' | 'cifarStem' | 'head' | 'dim' | 'imageSize' | 'amp' | 'channelsLast'> &
    Partial<Pick<PretrainConfig, 'mechanism' | 'mlpDim' | 'patchSize' | 'vitDepth' | 'stopGradConv1'>>,
): EncoderTrace {
  const v3 = c.mechanism === 'mocov3';
  const key = JSON.stringify([
    c.arch,
    c.width,
    c.cifarStem,
    c.head,
    c.dim,
    c.imageSize,
    c.amp,
    c.channelsLast,
    v3,
    v3 ? [c.mlpDim, c.patchSize, c.vitDepth, c.stopGradConv1] : null,
  ]);
  const hit = traced.get(key);
  if (hit) return hit;
  // The trace's init and input draw from the global generator: put its state back, so that a run's stream (and a
  // resumed run's) does not depend on whether this process traced the encoder before.
  const rng = getRngState();
  // MoCo v3: its base encoder (a ResNet with the 2-layer projector, or a ViT with the 3-layer one).
  const enc: Backbone = (
    v3
      ? mocov3Encoder({
          arch: c.arch,
          dim: c.dim,
          mlpDim: c.mlpDim,
          cifarStem: c.cifarStem,
          width: c.width,
          imageSize: c.imageSize,
          patchSize: c.patchSize,
          vitDepth: c.vitDepth,
          stopGradConv1: c.stopGradConv1,
        })
      : contrastiveEncoder({
          arch: c.arch,
          dim: c.dim,
          head: c.head,
          cifarStem: c.cifarStem,
          width: c.width,
          bnSplits: 1,
        })
  ).eval();
  try {
    if (c.channelsLast) enc.toMemoryFormat('channelsLast');
    let parameterBytes = 0;
    for (const p of enc.parameters()) parameterBytes += p.nbytes;
    const x = tidy(() => {
      const v = rand([1, 3, c.imageSize, c.imageSize]);
      return c.channelsLast ? v.contiguous('channelsLast') : v;
    });
    const forward = (): void => {
      enc.forward(x);
    };
    const activationBytesPerImage = enableGrad(() =>
      createdBytes(c.amp === 'bf16' ? () => autocast('cpu', forward, 'bfloat16') : forward),
    );
    x.dispose();
    const t = { activationBytesPerImage, parameterBytes };
    traced.set(key, t);
    return t;
  } finally {
    enc.dispose();
    setRngState(rng);
    rng.dispose();
  }
}

/**
 * The peak host memory of a pre-training run, estimated before any step from a model of the step: the process as
 * it is now, plus batch × saved activations per image × forwards with gradients (MoCo: the queries, ×2 when
 * symmetric; end-to-end: queries and keys; memory bank: one view) with backward's working memory, the weights
 * with their gradients and momentum (and MoCo's key encoder), the queue or bank, the logits and the view batches.
 * MoCo's key forward runs without gradients and is freed before the query forward, so it adds no peak of its
 * own. Measured peaks lie within {@link ESTIMATE_FACTOR} of it (docs/memory.md). CUDA runs: the step's tensors
 * are on the device, and the estimate is of host memory only (process and batches).
 */
export function estimatePeakMemory(c: PretrainConfig, ctx: MemoryContext): MemoryEstimate {
  const processBytes = ctx.processBytes ?? process.memoryUsage.rss();
  const world = ctx.worldSize ?? 1;
  const n = c.batchSize / world;
  const mechanism = c.mechanism ?? 'moco';
  const viewsPerImage = mechanism === 'memory-bank' ? 1 : 2;
  // MoCo v3: both views' queries carry gradients (its predictor is small next to the encoder and left out).
  const gradForwards =
    mechanism === 'end-to-end' || mechanism === 'mocov3' || (mechanism === 'moco' && c.symmetric) ? 2 : 1;
  const cuda = c.device !== 'cpu';
  const trace = traceEncoder(c);
  const perImage = trace.activationBytesPerImage;
  const ahead = ctx.files ? Math.max(2, c.workers) : 0;
  const batches = (1 + ahead) * viewsPerImage * n * 3 * c.imageSize * c.imageSize * 4;
  let activations = 0;
  let parameters = 0;
  let negatives = 0;
  let logits = 0;
  if (!cuda) {
    activations = n * perImage * (gradForwards + BACKWARD_OVERHEAD);
    // Weights (MoCo: of both encoders), gradients, SGD's momentum buffers, and its weight-decayed gradients, which
    // live until the update ends.
    const encoders = mechanism === 'moco' || mechanism === 'mocov3' ? 2 : 1;
    parameters = (encoders + 2 + (c.wd !== 0 ? 1 : 0)) * trace.parameterBytes;
    // Each logits row: the positive and the negatives (MoCo: K queued keys; memory bank: K drawn; end-to-end: the batch).
    // MoCo v3: the keys of the batch.
    const columns =
      mechanism === 'end-to-end'
        ? c.batchSize * (c.loss === 'ntxent' ? 2 : 1)
        : mechanism === 'mocov3'
          ? c.batchSize
          : 1 + c.K;
    logits = 3 * gradForwards * n * columns * 4;
    if (mechanism === 'moco') negatives = 2 * c.dim * c.K * 4;
    else if (mechanism === 'memory-bank')
      negatives = memoryBankBytes(ctx.trainImages, c.dim) + (c.bankSampling === 'per-sample' ? n : 1) * c.K * c.dim * 4;
  }
  if (c.knnEvery > 0) negatives += memoryBankBytes(ctx.trainImages, c.dim);
  const parts = { process: processBytes, activations, parameters, negatives, logits, batches };
  const peakBytes = Object.values(parts).reduce((a, b) => a + b, 0);
  return { peakBytes, activationBytesPerImage: perImage, imagesWithGrad: n * gradForwards, parts };
}

/** Memory this process can use, in bytes, and where the figure comes from (for messages). */
export interface AvailableMemory {
  bytes: number;
  source: string;
}

/** `2G`, `512M`, `1.5GiB`, `3000000000` → bytes; NaN when unreadable. */
export function parseBytes(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(s);
  if (!m) return NaN;
  const scale = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.floor(Number(m[1]) * scale);
}

function readNumber(path: string, field?: string): number | null {
  try {
    const text = readFileSync(path, 'utf8');
    if (!field) return /^\d+\s*$/.test(text) ? Number(text) : null;
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/**
 * The memory this process may reach: what it holds now plus what the machine can still give it — /proc/meminfo's
 * MemAvailable (os.freemem() elsewhere), or less where a cgroup v2 limit (/sys/fs/cgroup/memory.max) leaves less.
 * The environment variable MOCO_MEMORY_AVAILABLE (bytes, or with a unit: 512M, 2G) replaces the figure (tests,
 * or a machine shared with other jobs).
 */
export function availableMemory(
  env: NodeJS.ProcessEnv = process.env,
  processBytes = process.memoryUsage.rss(),
): AvailableMemory {
  const override = env.MOCO_MEMORY_AVAILABLE;
  if (override !== undefined && override !== '') {
    const bytes = parseBytes(override);
    if (!Number.isFinite(bytes) || bytes <= 0) {
      throw new Error(
        `MOCO_MEMORY_AVAILABLE='${override}' (from the environment) is not an amount of memory; give bytes or a number with a unit (512M, 2G), or unset it to use the machine's free memory`,
      );
    }
    return { bytes, source: 'MOCO_MEMORY_AVAILABLE' };
  }
  const memAvailable = readNumber('/proc/meminfo', 'MemAvailable');
  let free = memAvailable ?? freemem();
  let source = memAvailable !== null ? 'MemAvailable in /proc/meminfo' : 'free memory (os.freemem)';
  const limit = readNumber('/sys/fs/cgroup/memory.max');
  const used = readNumber('/sys/fs/cgroup/memory.current');
  if (limit !== null && used !== null && limit - used < free) {
    free = Math.max(0, limit - used);
    source = `the cgroup limit /sys/fs/cgroup/memory.max (${gib(limit)}, ${gib(used)} in use)`;
  }
  return { bytes: processBytes + free, source: `${source}, plus what this process holds` };
}

/** `--batch-size 256 (preset mocov1's)`: a setting and, when it is the preset's own value, whose it is. */
function setting(c: PretrainConfig, flag: string, key: 'batchSize' | 'imageSize'): string {
  let preset: number | undefined;
  try {
    preset = recipe(c.preset)[key];
  } catch {
    preset = undefined;
  }
  return `${flag} ${c[key]}${preset === c[key] ? ` (preset ${c.preset}'s)` : ''}`;
}

/**
 * Refuses a run whose estimated peak exceeds the memory available, before any step: the message names both
 * figures, what the peak is made of, and the flags that bring it down (with a batch size that fits, when one
 * does), and --no-memory-check.
 */
export function checkMemory(c: PretrainConfig, e: MemoryEstimate, avail: AvailableMemory, worldSize = 1): void {
  if (e.peakBytes <= avail.bytes) return;
  const p = e.parts;
  const perSample = (p.activations + p.logits + p.batches) / (c.batchSize / worldSize);
  const fixed = e.peakBytes - perSample * (c.batchSize / worldSize);
  const step = worldSize * c.bnSplits;
  const fit = Math.floor((avail.bytes - fixed) / perSample / step) * step;
  const batchHint =
    fit >= step
      ? `--batch-size ${fit} or less (about ${gib(fixed + (perSample * fit) / worldSize)})`
      : 'a smaller --batch-size';
  const what =
    `${c.arch}${c.cifarStem ? ' (CIFAR stem)' : ''} width ${c.width} at ${c.imageSize} px, ${setting(c, '--batch-size', 'batchSize')}: ` +
    `activations ${gib(p.activations)} (${e.imagesWithGrad} images × ${(e.activationBytesPerImage / 2 ** 20).toFixed(1)} MiB saved for backward, and backward's working memory), ` +
    `weights, gradients and momentum ${gib(p.parameters)}, queue or bank ${gib(p.negatives)}, logits ${gib(p.logits)}, view batches ${gib(p.batches)}, this process now ${gib(p.process)}`;
  throw new Error(
    `this run would need about ${gib(e.peakBytes)} of memory at its peak (${what}; measured peaks lie within ${ESTIMATE_FACTOR}× of this estimate, docs/memory.md), ` +
      `more than the ${gib(avail.bytes)} available (${avail.source}). Bring it down with ${batchHint}, a smaller ${setting(c, '--image-size', 'imageSize')}, ` +
      `or --preset cifar (ResNet-18, 32 px); or pass --no-memory-check to run it anyway`,
  );
}
