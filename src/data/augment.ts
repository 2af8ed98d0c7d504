// Batched augmentation pipelines (MoCo v2 aug+, v1, v3's asymmetric pair, the CIFAR demo, eval,
// linear-classification training) with per-sample random parameters from the run's seeded Rng.
import { readFile, stat } from 'node:fs/promises';
import {
  cropResizeInto,
  empty,
  getNumThreads,
  photometricInto,
  PhotometricOp,
  setNumThreads,
  tensor,
  tidy,
  type Tensor,
} from '../torch/index.js';
import { op } from '../torch/tensor.js';
import {
  blurKernelSize,
  hue_,
  brightness_,
  contrast_,
  gaussianBlur,
  grayscale_,
  normalize_,
  normalizeInto,
  resizedCrop,
  saturation_,
  solarize_,
} from './augment-ops.js';
import { centerCropBox, sampleCropBox, sampleJitter, type JitterParams, type JitterSpec } from './augment-params.js';
import {
  decodeImage,
  decodeStack,
  imageSize,
  skipLog,
  type Box,
  type DecodedImage,
  type DecodeOpts,
  type SkipLog,
} from './decode.js';
import type { Rng } from './rng.js';

export type { JitterSpec, JitterParams } from './augment-params.js';

/** A photometric stage; stages run in the order listed. Flip is folded into the crop (every stage commutes with it). */
export type Stage = 'jitter' | 'gray' | 'blur' | 'solarize';

/** A complete augmentation: geometry, colour, blur, flip, normalisation. */
export interface AugmentSpec {
  /** Output side in pixels. */
  size: number;
  /** RandomResizedCrop (scale: fraction of the area, ratio: w/h range); null: deterministic resize/center crop. */
  crop: { scale: [number, number]; ratio: [number, number] } | null;
  /** Without crop: Resize(shorter side → resize) then CenterCrop(size); null: stretch to size×size if needed. */
  resize: number | null;
  /** ColorJitter ranges and its probability; null: none. */
  jitter: JitterSpec | null;
  /** RandomGrayscale probability (0: never). */
  grayscale: number;
  /** Gaussian blur with σ ~ U[sigma] pixels, applied with probability p; null: none. */
  blur: { p: number; sigma: [number, number] } | null;
  /**
   * PIL's ImageOps.solarize (values ≥ threshold, in 0..255 units, inverted on the image quantised to 8 bits)
   * with probability p, at the 'solarize' stage of `order`; absent or null: none.
   */
  solarize?: { p: number; threshold: number } | null;
  /** Horizontal flip probability. */
  flip: number;
  /** Order of the photometric stages. */
  order: Stage[];
  /** Per-channel mean and std of the normalisation (of [0, 1] pixels). */
  mean: [number, number, number];
  std: [number, number, number];
  /**
   * An asymmetric pair (MoCo v3 / BYOL): the second view of a sample, and any later one, is drawn and built
   * with this spec's fields replaced by these; absent or null: every view alike. Output size and normalisation
   * are shared by all views.
   */
  view2?: ViewOverride | null;
}

/** The fields a later view may change (see {@link AugmentSpec.view2}). */
export type ViewOverride = Partial<
  Pick<AugmentSpec, 'crop' | 'resize' | 'jitter' | 'grayscale' | 'blur' | 'solarize' | 'flip' | 'order'>
>;

/** The spec view `view` (0-based) of a sample is built with: `spec` for view 0, with `spec.view2` applied after. */
export function specForView(spec: AugmentSpec, view: number): AugmentSpec {
  if (view === 0 || !spec.view2) return spec;
  const over = Object.fromEntries(Object.entries(spec.view2).filter(([, v]) => v !== undefined)) as ViewOverride;
  return { ...spec, ...over, view2: null };
}

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];
export const CIFAR_MEAN: [number, number, number] = [0.4914, 0.4822, 0.4465];
export const CIFAR_STD: [number, number, number] = [0.2023, 0.1994, 0.201];

export type PresetName =
  'mocov2' | 'mocov1' | 'cifar' | 'eval' | 'cifar-eval' | 'lincls-train' | 'mocov3' | 'mocov3-cifar';
export const PRESET_NAMES: readonly PresetName[] = [
  'mocov2',
  'mocov1',
  'cifar',
  'eval',
  'cifar-eval',
  'lincls-train',
  'mocov3',
  'mocov3-cifar',
];

export interface PresetOpts {
  /** Output side; default 224 (32 for `cifar`, `cifar-eval`, `mocov3-cifar`). */
  size?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
  /** Smallest area fraction of RandomResizedCrop (MoCo v3's --crop-min), for presets that crop; default the preset's. */
  cropMin?: number;
}

const RATIO: [number, number] = [3 / 4, 4 / 3];

/**
 * Named pipelines:
 * - `mocov2` (aug+): RandomResizedCrop(224, scale 0.2–1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2,
 *   blur σ ∈ [0.1, 2] p 0.5, flip, ImageNet mean/std;
 * - `mocov1`: RandomResizedCrop(224, 0.2–1), grayscale p 0.2, ColorJitter(0.4, 0.4, 0.4, 0.4), flip;
 * - `cifar` (colab demo): RandomResizedCrop(32, 0.08–1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2,
 *   flip, CIFAR mean/std;
 * - `eval`: Resize(256)+CenterCrop(224) (scaled with size), ImageNet mean/std;
 * - `cifar-eval`: no geometry (32×32 as is), CIFAR mean/std;
 * - `lincls-train`: RandomResizedCrop(224, 0.08–1), flip, ImageNet mean/std;
 * - `mocov3` (BYOL's asymmetric pair, MoCo v3's main_moco.py): both views RandomResizedCrop(224, 0.08–1),
 *   ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, flip, ImageNet mean/std; view 1 blur σ ∈ [0.1, 2]
 *   p 1.0; view 2 blur p 0.1 then solarize (threshold 128) p 0.2;
 * - `mocov3-cifar`: `mocov3` at 32 px with CIFAR mean/std and no blur in either view (the v3 peer's CIFAR
 *   recipe, `--no-blur`: σ ≥ 0.1 px on a 32-px image is a large part of it); view 2 keeps solarize p 0.2.
 * `cropMin` replaces the lower crop scale of any preset that crops.
 */
export function preset(name: PresetName, o: PresetOpts = {}): AugmentSpec {
  const spec = presetSpec(name, o);
  if (o.cropMin !== undefined) {
    if (!(o.cropMin > 0 && o.cropMin <= 1)) throw new RangeError(`cropMin must be in (0, 1], got ${o.cropMin}`);
    if (spec.crop) spec.crop = { ...spec.crop, scale: [o.cropMin, spec.crop.scale[1]] };
  }
  return spec;
}

const SOLARIZE_V3 = { p: 0.2, threshold: 128 };

function presetSpec(name: PresetName, o: PresetOpts): AugmentSpec {
  const small = name === 'cifar' || name === 'cifar-eval' || name === 'mocov3-cifar';
  const size = o.size ?? (small ? 32 : 224);
  const mean = o.mean ?? (small ? CIFAR_MEAN : IMAGENET_MEAN);
  const std = o.std ?? (small ? CIFAR_STD : IMAGENET_STD);
  const base = { size, mean, std, resize: null, jitter: null, grayscale: 0, blur: null, flip: 0, order: [] as Stage[] };
  switch (name) {
    case 'mocov2':
      return {
        ...base,
        crop: { scale: [0.2, 1], ratio: RATIO },
        jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
        grayscale: 0.2,
        blur: { p: 0.5, sigma: [0.1, 2] },
        flip: 0.5,
        order: ['jitter', 'gray', 'blur'],
      };
    case 'mocov1':
      return {
        ...base,
        crop: { scale: [0.2, 1], ratio: RATIO },
        jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.4, p: 1 },
        grayscale: 0.2,
        flip: 0.5,
        order: ['gray', 'jitter'],
      };
    case 'cifar':
      return {
        ...base,
        crop: { scale: [0.08, 1], ratio: RATIO },
        jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, p: 0.8 },
        grayscale: 0.2,
        flip: 0.5,
        order: ['jitter', 'gray'],
      };
    case 'eval':
      return { ...base, crop: null, resize: Math.round((size * 256) / 224) };
    case 'cifar-eval':
      return { ...base, crop: null };
    case 'lincls-train':
      return { ...base, crop: { scale: [0.08, 1], ratio: RATIO }, flip: 0.5 };
    case 'mocov3':
    case 'mocov3-cifar': {
      const v1: AugmentSpec = {
        ...base,
        crop: { scale: [0.08, 1], ratio: RATIO },
        jitter: { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8 },
        grayscale: 0.2,
        flip: 0.5,
      };
      if (name === 'mocov3-cifar')
        return {
          ...v1,
          order: ['jitter', 'gray'],
          view2: { solarize: SOLARIZE_V3, order: ['jitter', 'gray', 'solarize'] },
        };
      return {
        ...v1,
        blur: { p: 1, sigma: [0.1, 2] },
        order: ['jitter', 'gray', 'blur'],
        view2: {
          blur: { p: 0.1, sigma: [0.1, 2] },
          solarize: SOLARIZE_V3,
          order: ['jitter', 'gray', 'blur', 'solarize'],
        },
      };
    }
    default:
      throw new Error(`unknown augmentation preset '${String(name)}'; valid: ${PRESET_NAMES.join(', ')}`);
  }
}

export function isPresetName(s: string): s is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(s);
}

/** One view's random parameters. */
export interface ViewParams {
  /** Source region (pixels of the source image). */
  box: Box;
  flip: boolean;
  /** null when the jitter is not applied to this view. */
  jitter: JitterParams | null;
  gray: boolean;
  /** Blur σ in output pixels; 0: no blur. */
  sigma: number;
  /** Threshold (0..255 units) of the solarize this view gets; absent: none. */
  solarize?: number;
}

/**
 * Draws one view's parameters for a width×height source, in a fixed order (crop, flip, jitter, gray, blur,
 * solarize); a stage the spec lacks draws nothing. For view v of a sample pass {@link specForView}(spec, v).
 */
export function drawViewParams(spec: AugmentSpec, rng: Rng, width: number, height: number): ViewParams {
  let box: Box;
  if (spec.crop) box = sampleCropBox(rng, width, height, spec.crop.scale, spec.crop.ratio);
  else if (spec.resize) box = centerCropBox(width, height, spec.resize, spec.size);
  else box = { left: 0, top: 0, width, height };
  const flip = spec.flip > 0 && rng.bernoulli(spec.flip);
  const jitter = spec.jitter && rng.bernoulli(spec.jitter.p ?? 1) ? sampleJitter(rng, spec.jitter) : null;
  const gray = spec.grayscale > 0 && rng.bernoulli(spec.grayscale);
  const sigma = spec.blur && rng.bernoulli(spec.blur.p) ? rng.uniform(spec.blur.sigma[0], spec.blur.sigma[1]) : 0;
  if (spec.solarize && rng.bernoulli(spec.solarize.p))
    return { box, flip, jitter, gray, sigma, solarize: spec.solarize.threshold };
  return { box, flip, jitter, gray, sigma };
}

/** Applies `fn` (which may work in place and returns the result) to the samples of x at `pos`, in place. */
function onSubset(x: Tensor, pos: number[], fn: (sub: Tensor) => Tensor): void {
  if (!pos.length) return;
  tidy(() => {
    if (pos.length === x.shape[0]) {
      const r = fn(x);
      if (r !== x) x.copy_(r);
      return;
    }
    const t = tensorLong(Int32Array.from(pos));
    const idx = x.device === 'cpu' ? t : t.to(x.device);
    op('aten::index_copy_', '', [x, 0, idx, fn(x.indexSelect(0, idx))]);
  });
}

function tensorLong(a: Int32Array): Tensor {
  return tidy(() => tensor(a, { dtype: 'int32' }).long());
}

const JITTER_OPS = [brightness_, contrast_, saturation_, hue_];

const JITTER_OPCODES = [PhotometricOp.brightness, PhotometricOp.contrast, PhotometricOp.saturation, PhotometricOp.hue];
/** Most ops one view can get: the four jitter ops, grayscale, blur, solarize. */
const MAX_STEPS = 7;

/** The spec of each of `n` samples: `spec` for all, or one a sample. Mean and std are taken from the first. */
export type SampleSpecs = AugmentSpec | readonly AugmentSpec[];

function specOf(specs: SampleSpecs, i: number): AugmentSpec {
  return Array.isArray(specs) ? (specs as readonly AugmentSpec[])[i]! : (specs as AugmentSpec);
}

function normOf(specs: SampleSpecs): AugmentSpec {
  const s = Array.isArray(specs) ? (specs as readonly AugmentSpec[])[0] : (specs as AugmentSpec);
  if (!s) throw new Error('photometric: no spec');
  return s;
}

/**
 * The photometric ops of each view as a program for the native kernel ({@link photometricInto}): `steps`
 * triples (opcode, a, b) a view, in its spec's stage order and its jitter order; identities are left out.
 */
export function photometricProgram(
  params: readonly ViewParams[],
  spec: SampleSpecs,
  height: number,
  width: number,
): { program: Float32Array; steps: number } {
  const steps = MAX_STEPS;
  const program = new Float32Array(params.length * steps * 3);
  params.forEach((p, i) => {
    let at = i * steps * 3;
    const emit = (opc: number, a = 0, b = 0): void => {
      program[at++] = opc;
      program[at++] = a;
      program[at++] = b;
    };
    for (const stage of specOf(spec, i).order) {
      if (stage === 'jitter' && p.jitter) {
        const j = p.jitter;
        for (const opId of j.order) {
          const f = opId === 0 ? j.brightness : opId === 1 ? j.contrast : opId === 2 ? j.saturation : j.hue;
          if (opId === 3 ? f !== 0 : f !== 1) emit(JITTER_OPCODES[opId]!, f);
        }
      } else if (stage === 'gray' && p.gray) {
        emit(PhotometricOp.grayscale);
      } else if (stage === 'blur' && p.sigma > 0) {
        const k = blurKernelSize(p.sigma, height, width);
        if (k > 1) emit(PhotometricOp.blur, p.sigma, k);
      } else if (stage === 'solarize' && p.solarize !== undefined) {
        emit(PhotometricOp.solarize, p.solarize);
      }
    }
  });
  return { program, steps };
}

/**
 * The photometric stages and normalisation of a float N×3×S×S batch in [0, 1] (in place, or written to `out`).
 * On CPU one native pass per view ({@link photometricInto}); elsewhere composed from ATen ops, where
 * ColorJitter's per-sample random order is batched: at each of its four steps, the samples whose op at that
 * step is brightness (contrast, …) go through that op together. Both follow torchvision's definitions.
 */
export function photometric_(x: Tensor, params: readonly ViewParams[], spec: SampleSpecs, out?: Tensor): Tensor {
  if (x.device === 'cpu' && x.dtype === 'float32' && x.isContiguous() && (!out || out.isContiguous())) {
    const [, , h, w] = x.shape as [number, number, number, number];
    const { program, steps } = photometricProgram(params, spec, h, w);
    const s = normOf(spec);
    return photometricInto(x, 1, program, steps, s.mean, s.std, out ?? x);
  }
  return photometricAten_(x, params, spec, out);
}

/**
 * {@link photometric_} composed from ATen ops (any device). Samples whose specs order the stages differently
 * (the views of an asymmetric pair) are run as separate groups.
 */
export function photometricAten_(x: Tensor, params: readonly ViewParams[], spec: SampleSpecs, out?: Tensor): Tensor {
  const groups = new Map<string, number[]>();
  params.forEach((_, i) => {
    const k = specOf(spec, i).order.join();
    const g = groups.get(k);
    if (g) g.push(i);
    else groups.set(k, [i]);
  });
  if (groups.size <= 1) {
    if (params.length) stagesAten_(x, params, specOf(spec, 0).order);
  } else {
    for (const pos of groups.values())
      onSubset(x, pos, (sub) =>
        stagesAten_(
          sub,
          pos.map((i) => params[i]!),
          specOf(spec, pos[0]!).order,
        ),
      );
  }
  const s = normOf(spec);
  return out ? normalizeInto(x, s.mean, s.std, out) : normalize_(x, s.mean, s.std);
}

/** The photometric stages of every sample of x, in `order` (in place; returns x). */
function stagesAten_(x: Tensor, params: readonly ViewParams[], order: readonly Stage[]): Tensor {
  for (const stage of order) {
    if (stage === 'jitter') {
      for (let step = 0; step < 4; step++) {
        for (let opId = 0; opId < 4; opId++) {
          const pos: number[] = [];
          const fac: number[] = [];
          params.forEach((p, i) => {
            const j = p.jitter;
            if (!j || j.order[step] !== opId) return;
            const f = opId === 0 ? j.brightness : opId === 1 ? j.contrast : opId === 2 ? j.saturation : j.hue;
            if (opId === 3 ? f === 0 : f === 1) return; // identity
            pos.push(i);
            fac.push(f);
          });
          onSubset(x, pos, (sub) => JITTER_OPS[opId]!(sub, fac));
        }
      }
    } else if (stage === 'gray') {
      onSubset(
        x,
        params.flatMap((p, i) => (p.gray ? [i] : [])),
        grayscale_,
      );
    } else if (stage === 'blur') {
      const pos = params.flatMap((p, i) => (p.sigma > 0 ? [i] : []));
      const sig = pos.map((i) => params[i]!.sigma);
      onSubset(x, pos, (sub) => gaussianBlur(sub, sig));
    } else {
      const pos = params.flatMap((p, i) => (p.solarize !== undefined ? [i] : []));
      const thr = pos.map((i) => params[i]!.solarize!);
      onSubset(x, pos, (sub) => solarize_(sub, thr));
    }
  }
  return x;
}

/**
 * In-memory views are processed in chunks of about this many bytes of float32 pixels (override:
 * MOCO_AUG_CHUNK_BYTES), so that the resized crop and, off CPU, the ~30 elementwise ATen passes of
 * {@link photometricAten_} stay in cache: one pass over 32 views at 224 px measured ~10× slower per view than
 * over 8 (every intermediate of a whole batch is a fresh page-faulted allocation).
 */
const CHUNK_BYTES = Number(process.env.MOCO_AUG_CHUNK_BYTES) || 2 << 20;

// With only a few views a chunk, the per-op gathers of jitter subsets cost more than they save: go to one
// view a chunk, where every op applies to the whole chunk or not at all.
function chunkViews(S: number): number {
  const n = Math.floor(CHUNK_BYTES / (12 * S * S));
  return n < 4 ? 1 : n;
}

const SMALL_FILE_BYTES = 4 << 20;

/** Plain S×S JPEGs decoded in one sharp call (see {@link Augmentation.fromFilesStacked}). */
const JOIN_GROUP = 16;

/** Images of about this many pixels or fewer are decoded once and cropped in memory for every view. */
const DECODE_ONCE_PIXELS = 1 << 21;

/**
 * An augmentation pipeline. Samples come from an in-memory uint8 tensor (geometry by one batched grid_sample)
 * or from files (decoded by sharp in libuv threads; images up to ~2 MP decoded once and cropped+resized as PIL
 * does, larger ones cropped and resized by sharp while decoding); colour and blur are
 * batched on tensors either way.
 */
export class Augmentation {
  readonly spec: AugmentSpec;
  /** libtorch intra-op threads while augmenting (restored after); null leaves the setting alone. */
  readonly threads: number | null;
  /**
   * `threads` defaults to `MOCO_AUG_THREADS` or 1: augmentation runs on cache-sized chunks where a second
   * OpenMP thread gains little, and on the busy shared 2-core machine each op then waited milliseconds for it
   * (CIFAR batches measured up to 25× slower with 2 threads than with 1). Use Loader `workers` for parallelism.
   */
  constructor(spec: AugmentSpec | PresetName, o: PresetOpts & { threads?: number | null } = {}) {
    this.spec = typeof spec === 'string' ? preset(spec, o) : spec;
    const over = this.spec.view2 as Record<string, unknown> | null | undefined;
    for (const k of ['size', 'mean', 'std', 'view2']) {
      if (over && over[k] !== undefined)
        throw new Error(`augmentation: view2 cannot change '${k}' (all views share the output size and normalisation)`);
    }
    const env = Number(process.env.MOCO_AUG_THREADS);
    this.threads = o.threads !== undefined ? o.threads : env > 0 ? env : 1;
  }

  private withThreads<T>(fn: () => T): T {
    if (this.threads === null) return fn();
    const before = getNumThreads();
    if (before === this.threads) return fn();
    setNumThreads(this.threads);
    try {
      return fn();
    } finally {
      setNumThreads(before);
    }
  }

  /** The spec of each of `views` views (0-based): {@link specForView}. */
  viewSpecs(views: number): AugmentSpec[] {
    return Array.from({ length: views }, (_, v) => specForView(this.spec, v));
  }

  /**
   * `views` independently augmented views of images[indices] (N×3×H×W uint8): float32 N×3×S×S each,
   * normalised. Parameters come from `rng` (view-major: all of view 0, then view 1), each view's from its
   * own spec (view 2 onwards with {@link AugmentSpec.view2} applied).
   */
  fromMemory(images: Tensor, indices: ArrayLike<number>, rng: Rng, views = 1): Tensor[] {
    return tidy(() => {
      const all = this.fromMemoryStacked(images, indices, rng, views);
      return all.chunk(views, 0);
    });
  }

  /** {@link fromMemory} with the views stacked in one (views·N)×3×S×S tensor, view-major. */
  fromMemoryStacked(images: Tensor, indices: ArrayLike<number>, rng: Rng, views = 1): Tensor {
    const [, , H, W] = images.shape as [number, number, number, number];
    const n = indices.length;
    const params: ViewParams[] = [];
    const specs: AugmentSpec[] = [];
    const src: number[] = [];
    const vs = this.viewSpecs(views);
    for (let v = 0; v < views; v++) {
      for (let i = 0; i < n; i++) {
        params.push(drawViewParams(vs[v]!, rng, W, H));
        specs.push(vs[v]!);
        src.push(indices[i]!);
      }
    }
    const S = this.spec.size;
    const identity = !this.spec.crop && H === S && W === S;
    const total = views * n;
    const step = chunkViews(S);
    return this.withThreads(() =>
      tidy(() => {
        const out = empty([total, 3, S, S], { device: images.device });
        for (let s0 = 0; s0 < total; s0 += step) {
          const len = Math.min(step, total - s0);
          tidy(() => {
            const ps = params.slice(s0, s0 + len);
            const ss = src.slice(s0, s0 + len);
            let x: Tensor;
            if (identity) {
              const t = tensorLong(Int32Array.from(ss));
              x = images
                .indexSelect(0, images.device === 'cpu' ? t : t.to(images.device))
                .float()
                .div_(255);
              const fl = ps.flatMap((p, i) => (p.flip ? [i] : []));
              onSubset(x, fl, (sub) => sub.flip(3));
            } else {
              x = resizedCrop(
                images,
                ss,
                ps.map((p) => p.box),
                S,
                ps.map((p) => p.flip),
              ).div_(255);
            }
            photometric_(x, ps, this.spec.view2 ? specs.slice(s0, s0 + len) : this.spec, out.narrow(0, s0, len));
          });
        }
        return out;
      }),
    );
  }

  /**
   * Views of image files: headers are read first so that parameters are drawn in a fixed order, then each
   * view is cut from the decoded image with its crop+resize+flip. A file that cannot be read is reported once to `log`
   * and replaced by `substitute(position)` (another dataset index; its path from `pathOf`), or with `blank` left in
   * place as a mid-gray image (as a file whose pixels fail after a good header always is), for callers that drop
   * the rows of logged files. Returns the views, the dataset indices actually used and the positions (0..N-1,
   * ascending) left mid-gray.
   */
  async fromFiles(
    pathOf: (index: number) => string,
    indices: ArrayLike<number>,
    rng: Rng,
    views = 1,
    o: FromFilesOpts = {},
  ): Promise<{ views: Tensor[]; used: Int32Array; blank: Int32Array }> {
    const r = await this.fromFilesStacked(pathOf, indices, rng, views, o);
    const v = tidy(() => r.views.chunk(views, 0));
    r.views.dispose();
    return { views: v, used: r.used, blank: r.blank };
  }

  /** {@link fromFiles} with the views stacked in one (views·N)×3×S×S tensor, view-major. */
  async fromFilesStacked(
    pathOf: (index: number) => string,
    indices: ArrayLike<number>,
    rng: Rng,
    views = 1,
    o: FromFilesOpts = {},
  ): Promise<{ views: Tensor; used: Int32Array; blank: Int32Array }> {
    const log = o.log ?? skipLog;
    const n = indices.length;
    const used = Int32Array.from(indices as ArrayLike<number>);
    const sizes: { width: number; height: number }[] = new Array(n);
    const gray = new Uint8Array(n);
    // Files of up to 4 MiB are read once into memory and decoded from there: sharp opening the file itself cost
    // ~0.5 ms more CPU per image (the header read and the decode each open it). Bigger files stay on disk.
    const bytes: (Uint8Array | string | undefined)[] = new Array(n);
    const readHeader = async (i: number): Promise<void> => {
      for (let tries = 0; ; tries++) {
        const p = pathOf(used[i]!);
        try {
          if (log.has(p)) throw new Error(log.reasonOf(p) ?? 'unreadable');
          bytes[i] = await readSmall(p);
          // Plain JPEGs' sizes come from their frame header, parsed here: sharp's header read cost ~0.5 ms an image.
          // (A JPEG whose header segments parse but that sharp would still reject now fails at the decode: gray,
          // not substituted, as a file cut after its headers always was.)
          const b = bytes[i]!;
          sizes[i] = (typeof b !== 'string' ? plainJpegSize(b) : null) ?? (await imageSize(b));
          return;
        } catch (e) {
          log.report(p, e instanceof Error ? e.message.split('\n')[0]! : String(e));
          if (o.blank) {
            bytes[i] = undefined;
            sizes[i] = { width: 1, height: 1 };
            return;
          }
          if (!o.substitute || tries >= 100) throw new Error(`cannot read ${p} and no replacement found`, { cause: e });
          used[i] = o.substitute(used[i]!);
        }
      }
    };
    const S = this.spec.size;
    const per = S * S * 3;
    const buf = new Uint8Array(views * n * per);
    const params: ViewParams[][] = Array.from({ length: n }, () => []);
    // One view of the whole image (no crop, no resize+center-crop: `cifar-eval`, embedding with a CIFAR-stem
    // encoder): nothing drawn depends on the image's size, so each file's header and decode follow each other
    // without waiting for the whole batch's headers.
    if (views === 1 && !this.spec.crop && !this.spec.resize) {
      for (let i = 0; i < n; i++) params[i]!.push(drawViewParams(this.spec, rng, 1, 1));
      // S×S 3-component JPEGs without colour profile or EXIF, taken unflipped (CIFAR's files with a CIFAR-stem
      // encoder) are decoded JOIN_GROUP at a time in one sharp call, stacked (sharp's `join`): its set-up, not the
      // pixels, is most of the ~1 ms a 32×32 JPEG costs; the pixels are the same as one call per image.
      const group: number[] = [];
      const calls: Promise<void>[] = [];
      const flush = (): void => {
        if (group.length) calls.push(decodeJoined(group.splice(0)));
      };
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          await readHeader(i);
          params[i]![0]!.box = { left: 0, top: 0, width: sizes[i]!.width, height: sizes[i]!.height };
          const b = bytes[i];
          const jh =
            b !== undefined &&
            typeof b !== 'string' &&
            sizes[i]!.width === S &&
            sizes[i]!.height === S &&
            !params[i]![0]!.flip
              ? jpegHeader(b)
              : null;
          if (jh && jh.components === 3 && !jh.colourInfo) {
            group.push(i);
            if (group.length === JOIN_GROUP) flush();
          } else {
            await decodeOne(i);
          }
        }),
      );
      flush();
      await Promise.all(calls);
    } else {
      await Promise.all(Array.from({ length: n }, async (_, i) => readHeader(i)));
      const vs = this.viewSpecs(views);
      for (let v = 0; v < views; v++)
        for (let i = 0; i < n; i++) params[i]!.push(drawViewParams(vs[v]!, rng, sizes[i]!.width, sizes[i]!.height));
      await Promise.all(Array.from({ length: n }, async (_, i) => decodeOne(i)));
    }
    async function decodeJoined(idx: number[]): Promise<void> {
      if (idx.length > 1) {
        try {
          const all = await decodeStack(idx.map((i) => bytes[i] as Uint8Array));
          if (all.width === S && all.height === S * idx.length) {
            idx.forEach((i, k) => buf.set(all.data.subarray(k * per, (k + 1) * per), i * per));
            return;
          }
        } catch {
          /* one of them is broken: each on its own below */
        }
      }
      await Promise.all(idx.map(async (i) => decodeOne(i)));
    }
    async function decodeOne(i: number): Promise<void> {
      const p = pathOf(used[i]!);
      const ps = params[i]!;
      const put = (v: number, img: DecodedImage): void => buf.set(img.data, (v * n + i) * per);
      try {
        const { width, height } = sizes[i]!;
        const input = bytes[i];
        if (input === undefined) throw new Error(log.reasonOf(p) ?? 'unreadable');
        if (views > 1 && width * height <= DECODE_ONCE_PIXELS) {
          const full = await decodeImage(input);
          await cropResizeInto(
            full.data,
            full.width,
            full.height,
            ps.map((vp) => intBox(vp.box, full.width, full.height)),
            ps.map((vp) => vp.flip),
            S,
            buf,
            ps.map((_, v) => (v * n + i) * per),
          );
        } else {
          await Promise.all(
            ps.map(async (vp, v) => put(v, await decodeImage(input, viewDecodeOpts(vp, S, width, height)))),
          );
        }
      } catch (e) {
        // Header fine but pixels broken (truncated file): report, and leave a mid-gray image this once.
        log.report(p, e instanceof Error ? e.message.split('\n')[0]! : String(e));
        gray[i] = 1;
        for (let v = 0; v < views; v++) buf.fill(128, (v * n + i) * per, (v * n + i + 1) * per);
      }
    }
    const ordered: ViewParams[] = [];
    for (let v = 0; v < views; v++) for (let i = 0; i < n; i++) ordered.push(params[i]![v]!);
    // Straight from the decoded bytes (channels last) to normalised planes: every view in one native call.
    const vs = this.viewSpecs(views);
    const { program, steps } = photometricProgram(
      ordered,
      this.spec.view2 ? ordered.map((_, k) => vs[Math.floor(k / n)]!) : this.spec,
      S,
      S,
    );
    const out = this.withThreads(() =>
      tidy(() => {
        const res = empty([views * n, 3, S, S]);
        return photometricInto(
          tensor(buf, { shape: [views * n, S, S, 3], dtype: 'uint8' }),
          1 / 255,
          program,
          steps,
          this.spec.mean,
          this.spec.std,
          res,
        );
      }),
    );
    const blank: number[] = [];
    gray.forEach((g, i) => {
      if (g) blank.push(i);
    });
    return { views: out, used, blank: Int32Array.from(blank) };
  }
}

/** How {@link Augmentation.fromFiles} reads files. */
export interface FromFilesOpts {
  /** Another dataset index to use in place of an unreadable one. */
  substitute?: (index: number) => number;
  /** Leave an unreadable file in place as a mid-gray image (reported to `log`) instead of substituting. */
  blank?: boolean;
  /** Where unreadable files are reported; default the process-wide skip log. */
  log?: SkipLog;
}

/** Files of up to 4 MiB as bytes (sharp opening the file itself cost more CPU), bigger ones as their path. */
async function readSmall(p: string): Promise<Uint8Array | string> {
  return (await stat(p)).size <= SMALL_FILE_BYTES ? readFile(p) : p;
}

/** What {@link jpegHeader} reads from a JPEG's header segments. */
export interface JpegHeader {
  width: number;
  height: number;
  /** Colour components of the frame (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK). */
  components: number;
  /** An APP2 (ICC profile) or APP14 (Adobe colour transform) segment is present. */
  colourInfo: boolean;
}

/**
 * A JPEG's frame (SOF) header, or null when in any doubt: not a JPEG, an APP1 segment (EXIF, which may rotate
 * it), a marker structure that does not reach the first scan (SOS) intact, no frame, or a zero size. Where it
 * answers, sharp's header read (`imageSize`) gives the same size.
 */
export function jpegHeader(b: Uint8Array): JpegHeader | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let at = 2;
  let h: JpegHeader | null = null;
  let colourInfo = false;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return null;
    const m = b[at + 1]!;
    if (m === 0xff) {
      at++;
      continue;
    }
    if (m === 0xda) return h && { ...h, colourInfo }; // the first scan: every header segment was read
    if (m === 0xe1 || m === 0xd8 || m === 0xd9 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) return null;
    const len = (b[at + 2]! << 8) | b[at + 3]!;
    if (len < 2 || at + 2 + len > b.length) return null;
    if (m === 0xe2 || m === 0xee) colourInfo = true;
    // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (h || len < 8) return null;
      const height = (b[at + 5]! << 8) | b[at + 6]!;
      const width = (b[at + 7]! << 8) | b[at + 8]!;
      if (!width || !height) return null;
      h = { width, height, components: b[at + 9]!, colourInfo: false };
    }
    at += 2 + len;
  }
  return null;
}

/** The size of a JPEG from {@link jpegHeader}, or null. */
export function plainJpegSize(b: Uint8Array): { width: number; height: number } | null {
  const h = jpegHeader(b);
  return h && { width: h.width, height: h.height };
}

function intBox(b: Box, width: number, height: number): Box {
  const left = Math.max(0, Math.min(width - 1, Math.round(b.left)));
  const top = Math.max(0, Math.min(height - 1, Math.round(b.top)));
  return {
    left,
    top,
    width: Math.max(1, Math.min(width - left, Math.round(b.width))),
    height: Math.max(1, Math.min(height - top, Math.round(b.height))),
  };
}

function viewDecodeOpts(vp: ViewParams, S: number, width: number, height: number): DecodeOpts {
  const crop = intBox(vp.box, width, height);
  // The whole of an S×S image: extract and resize would copy it as it is (measured identical), at ~0.2 ms.
  if (width === S && height === S && crop.left === 0 && crop.top === 0 && crop.width === S && crop.height === S)
    return { flip: vp.flip };
  return { crop, resize: { width: S, height: S }, flip: vp.flip };
}

/** Query and key views of the same images, independently augmented (MoCo's TwoCropsTransform). */
export class TwoCrops {
  readonly aug: Augmentation;
  constructor(aug: Augmentation | AugmentSpec | PresetName) {
    this.aug = aug instanceof Augmentation ? aug : new Augmentation(aug);
  }
  /** [q, k] of images[indices]. */
  fromMemory(images: Tensor, indices: ArrayLike<number>, rng: Rng): [Tensor, Tensor] {
    return this.aug.fromMemory(images, indices, rng, 2) as [Tensor, Tensor];
  }
}
