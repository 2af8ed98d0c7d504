// The resolved configuration of a pre-training run: recipe defaults ← config file ← command-line flags,
// validated before any work so that a bad value is reported by its flag with the valid range.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_PRESET, MECHANISMS, RECIPE_FALLBACKS, isMechanismName, isViTArch, recipe, type BankSampling, type EndToEndLoss, type Recipe } from '../moco/index.js';
import { ARCHS, VIT_ARCHS } from '../models/index.js';
import { OPTIMIZERS } from '../optim/index.js';
import { isPresetName } from '../data/index.js';
import { flagOf, settingsFromObject } from './config-keys.js';

export { flagOf };

export interface PretrainConfig extends Recipe {
  /** Dataset spec: a folder, `cifar10:DIR`, `cifar100:DIR` or `synthetic[:N]`. */
  data: string;
  preset: string;
  /** Run directory (checkpoints, metrics, config.json). */
  out: string;
  seed: number;
  threads: number;
  device: string;
  /** Batches decoded ahead (file datasets). */
  workers: number;
  /** 0: the whole dataset. */
  trainSubset: number;
  /** Stop after this many optimizer steps in total (0: run all epochs). */
  maxSteps: number;
  /** Also checkpoint every N steps (0: only at epoch ends). */
  saveEverySteps: number;
  /** Checkpoints kept in the run directory (older ones are deleted). */
  keepCheckpoints: number;
  /** kNN monitor every E epochs (0: off) on the labelled test/val split. */
  knnEvery: number;
  knnK: number;
  knnT: number;
  /** Features of the kNN monitor: the 128-d head output (the CIFAR demo's) or the pooled backbone. */
  knnFeature: 'head' | 'backbone';
  /** Log a line every N steps when stdout is not a terminal. */
  printFreq: number;
  /** Key-batch shuffle (ShuffleBN). */
  shuffleBn: boolean;
  /** End-to-end only: 'infonce' (N×N logits) or 'ntxent' (SimCLR's, 2N−2 negatives). Default 'infonce'. */
  loss: EndToEndLoss;
  /** Memory bank only: negatives drawn once per batch ('shared') or per sample. Default 'shared'. */
  bankSampling: BankSampling;
  /** Memory bank only: m of v ← normalize(m·v + (1−m)·q). Default 0.5. */
  bankMomentum: number;
  /** 'linear': the lr used is --lr × batch / 256 (main_moco.py's rule). Default 'linear' for end-to-end and mocov3, else 'none'. */
  lrScaling: 'none' | 'linear';
  /** Mixed precision: 'bf16' runs each step's forward under autocast in bfloat16 (fp32 master weights, loss and optimizer); default 'off'. */
  amp: 'off' | 'bf16';
  /** Weights and views in channels-last (NHWC) memory. Default false. */
  channelsLast: boolean;
}

/**
 * The defaults of the settings that are not the recipe's (a preset sets those), as a run gets them when neither
 * a --config file nor a flag gives them. `threads` is the machine's core count and `lrScaling` follows the
 * mechanism (see PretrainConfig), so neither is here; `out` '' is runs/<preset>-<time>.
 */
export const RUN_DEFAULTS = {
  out: '', seed: 0, device: 'cpu', workers: 2, trainSubset: 0, maxSteps: 0, saveEverySteps: 0, keepCheckpoints: 3,
  knnEvery: 0, knnK: 200, knnT: 0.1, knnFeature: 'head', printFreq: 10, shuffleBn: true, loss: 'infonce',
  bankSampling: 'shared', bankMomentum: 0.5, amp: 'off', channelsLast: false,
} as const satisfies Partial<PretrainConfig>;

/** Flags as the command line gives them (camelCase of the flag names); undefined = not given. */
export type ConfigOverrides = Partial<PretrainConfig> & { config?: string; augPlus?: boolean; mlp?: boolean };

/**
 * Reads a JSON or YAML config file of settings keyed by `moco pretrain`'s flag names without the dashes
 * (`batch-size: 64`, `moco-k: 256`, `mlp: true`) or by config.json's camelCase keys, so that a run's config.json
 * can be passed back. Unknown keys and values a flag would refuse are errors naming the file and the key.
 */
export function readConfigFile(path: string): Partial<PretrainConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--config ${path}: cannot read (${(e as Error).message})`);
  }
  try {
    const v: unknown = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected an object of settings, e.g. batch-size: 64');
    return settingsFromObject(v as Record<string, unknown>, `--config ${path}`);
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(m.startsWith('--config ') ? m : `--config ${path}: ${m}`, { cause: e });
  }
}

/** Whether two dataset specs name the same data: the same text, or paths that resolve to the same place. */
function sameData(a: string, b: string): boolean {
  return a === b || resolvePath(a) === resolvePath(b);
}

/**
 * Merges, later winning: the preset's recipe (or `base`, a resumed run's own config) ← the --config file ← flags.
 * `data` may be '' with a `base`: the resumed run's data; a different `data` is refused, naming both.
 */
export function resolveConfig(data: string, flags: ConfigOverrides, base?: PretrainConfig): PretrainConfig {
  if (base && data && base.data && !sameData(data, base.data)) {
    throw new Error(`the data argument '${data}' is not the resumed run's data '${base.data}' (recorded in ${base.out || 'its checkpoint'}); leave the data argument out to continue on the run's own data, or start a new run with another --out`);
  }
  const file = flags.config ? readConfigFile(flags.config) : {};
  const presetName = flags.preset ?? file.preset ?? base?.preset ?? DEFAULT_PRESET;
  // A resumed run's config from before a setting existed reads that setting as v1/v2 runs had it.
  const r = base ? { ...RECIPE_FALLBACKS, ...base } : { ...recipe(presetName), preset: presetName };
  const defaults: PretrainConfig = {
    ...RUN_DEFAULTS, ...r, data, preset: presetName, threads: availableParallelism(),
    lrScaling: undefined as unknown as PretrainConfig['lrScaling'],
  };
  const merged: PretrainConfig = { ...defaults, ...(base ?? {}), ...file };
  // Where each value came from, so that an error about a value the user never typed says whose it is.
  const origin: Origin = {};
  for (const k of Object.keys(r) as (keyof PretrainConfig)[]) origin[k] = base ? `the resumed run's config` : `preset ${presetName}`;
  for (const k of Object.keys(file) as (keyof PretrainConfig)[]) origin[k] = `--config ${flags.config}`;
  const { config: _c, augPlus, mlp, ...rest } = flags;
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined) continue;
    (merged as unknown as Record<string, unknown>)[k] = v;
    delete origin[k as keyof PretrainConfig];
  }
  if (mlp) { merged.head = 'mlp'; delete origin.head; }
  if (augPlus) { merged.augment = 'mocov2'; delete origin.augment; }
  merged.lrScaling ??= merged.mechanism === 'end-to-end' || merged.mechanism === 'mocov3' ? 'linear' : 'none';
  merged.data = data || merged.data;
  if (!merged.out) merged.out = `runs/${merged.preset}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`;
  validate(merged, origin);
  return merged;
}

/** The source of config values not given as flags: 'preset cifar', '--config run.yaml', … */
export type Origin = Partial<Record<keyof PretrainConfig, string>>;

/** `--bn-splits 8 (from preset mocov1)`: a flag and its value, with its source when the user did not type it. */
function named(c: PretrainConfig, origin: Origin, key: keyof PretrainConfig): string {
  return `${flagOf(key)} ${JSON.stringify(c[key])}${origin[key] ? ` (from ${origin[key]})` : ''}`;
}

/** The divisors of n, as a readable list: '1, 2 or 4'. */
export function divisorsText(n: number): string {
  const d: number[] = [];
  for (let i = 1; i <= n; i++) if (n % i === 0) d.push(i);
  const shown = d.length > 12 ? [...d.slice(0, 11), '…', d[d.length - 1]!] : d;
  return shown.length > 1 ? `${shown.slice(0, -1).join(', ')} or ${shown[shown.length - 1]}` : String(shown[0]);
}

/** Keys a MoCo step enqueues: the batch, twice with --symmetric (both view orders); the queue holds at least this many. */
export function keysPerStep(c: Pick<PretrainConfig, 'batchSize' | 'symmetric'>): number { return c.batchSize * (c.symmetric ? 2 : 1); }

function isInt(v: unknown, min: number): boolean { return typeof v === 'number' && Number.isInteger(v) && v >= min; }

/** Rejects values no run could use, naming the flag, where its value came from, and the valid range. */
export function validate(c: PretrainConfig, origin: Origin = {}): void {
  const check = (ok: boolean, key: keyof PretrainConfig, valid: string): void => {
    if (!ok) throw new Error(`invalid ${named(c, origin, key)}: ${valid}`);
  };
  check(c.head === 'fc' || c.head === 'mlp', 'head', "'fc' or 'mlp'");
  check(typeof c.evalAugment === 'string' && isPresetName(c.evalAugment as string), 'evalAugment', 'an augmentation preset, e.g. eval or cifar-eval');
  for (const k of ['cos', 'symmetric', 'cifarStem', 'shuffleBn'] as const) check(typeof c[k] === 'boolean', k, 'true or false');
  check(c.arch in ARCHS || c.arch in VIT_ARCHS, 'arch', `one of ${[...Object.keys(ARCHS), ...Object.keys(VIT_ARCHS)].join(', ')}`);
  check(isInt(c.batchSize, 1), 'batchSize', 'a positive integer');
  check(isInt(c.epochs, 1), 'epochs', 'a positive integer');
  check(typeof c.lr === 'number' && c.lr > 0 && Number.isFinite(c.lr), 'lr', 'a number > 0');
  check(typeof c.wd === 'number' && c.wd >= 0, 'wd', 'a number ≥ 0');
  check(typeof c.momentum === 'number' && c.momentum >= 0 && c.momentum < 1, 'momentum', 'a number in [0, 1)');
  check(isInt(c.dim, 1), 'dim', 'a positive integer');
  check(isInt(c.K, 1), 'K', 'a positive integer');
  check(isMechanismName(c.mechanism), 'mechanism', `one of ${MECHANISMS.join(', ')}`);
  check(c.loss === 'infonce' || c.loss === 'ntxent', 'loss', "'infonce' or 'ntxent'");
  check(c.loss === 'infonce' || c.mechanism === 'end-to-end', 'loss', `NT-Xent is a loss of --mechanism end-to-end (here ${named(c, origin, 'mechanism')}); drop --loss or pass --mechanism end-to-end`);
  check(!c.symmetric || c.mechanism === 'moco', 'symmetric', `the symmetric loss is MoCo's (here ${named(c, origin, 'mechanism')}); for a symmetric end-to-end loss pass --loss ntxent`);
  check(c.bankSampling === 'shared' || c.bankSampling === 'per-sample', 'bankSampling', "'shared' or 'per-sample'");
  check(typeof c.bankMomentum === 'number' && c.bankMomentum >= 0 && c.bankMomentum < 1, 'bankMomentum', 'a number in [0, 1)');
  check(c.lrScaling === 'none' || c.lrScaling === 'linear', 'lrScaling', "'none' or 'linear'");
  validateV3(c, origin, named);
  const perStep = keysPerStep(c);
  check(c.mechanism !== 'moco' || c.K >= perStep, 'K', `must be at least the keys enqueued per step (${named(c, origin, 'batchSize')}${c.symmetric ? ' × 2 for --symmetric' : ''} = ${perStep}); pass --moco-k ${perStep} or more, or a smaller --batch-size`);
  check(typeof c.m === 'number' && c.m >= 0 && c.m < 1, 'm', 'a number in [0, 1)');
  check(typeof c.T === 'number' && c.T > 0, 'T', 'a number > 0');
  check(isInt(c.width, 1), 'width', 'a positive integer (64 = torchvision)');
  check(isInt(c.imageSize, 8), 'imageSize', 'an integer ≥ 8 (pixels)');
  check(isInt(c.bnSplits, 1), 'bnSplits', 'a positive integer');
  check(c.batchSize % c.bnSplits === 0, 'bnSplits', `must divide ${named(c, origin, 'batchSize')}; pass --bn-splits ${divisorsText(c.batchSize)}`);
  check(Array.isArray(c.schedule) && c.schedule.every((x) => isInt(x, 0)), 'schedule', 'a list of epochs, e.g. 120,160');
  check(typeof c.augment === 'string' && isPresetName(c.augment as string), 'augment', 'mocov2, mocov1, cifar, mocov3, mocov3-cifar, eval, lincls-train');
  check(isInt(c.seed, 0), 'seed', 'a non-negative integer');
  check(isInt(c.threads, 1), 'threads', 'a positive integer');
  check(c.device === 'cpu' || /^cuda(:\d+)?$/.test(c.device), 'device', "'cpu' or 'cuda[:N]'");
  check(isInt(c.workers, 0), 'workers', 'an integer ≥ 0');
  for (const k of ['trainSubset', 'maxSteps', 'saveEverySteps', 'knnEvery'] as const) check(isInt(c[k], 0), k, 'an integer ≥ 0');
  check(isInt(c.keepCheckpoints, 1), 'keepCheckpoints', 'a positive integer');
  check(isInt(c.knnK, 1), 'knnK', 'a positive integer');
  check(typeof c.knnT === 'number' && c.knnT > 0, 'knnT', 'a number > 0');
  check(c.knnFeature === 'head' || c.knnFeature === 'backbone', 'knnFeature', "'head' or 'backbone'");
  check(isInt(c.printFreq, 1), 'printFreq', 'a positive integer');
  check(c.amp === 'off' || c.amp === 'bf16', 'amp', "'off' or 'bf16'");
  check(typeof c.channelsLast === 'boolean', 'channelsLast', 'true or false');
}

/**
 * MoCo v3's settings and the combinations that make no run. Decided: LARS and AdamW (and the per-iteration
 * warm-up and momentum schedules that come with them) are MoCo v3's: with --mechanism moco, end-to-end or
 * memory-bank they are refused, as are ViT archs (their encoders build a ResNet and swap its fc). MoCo v3 runs
 * with any of sgd, lars, adamw, always on the per-iteration warm-up + half-cosine lr.
 */
function validateV3(c: PretrainConfig, origin: Origin, named: (c: PretrainConfig, origin: Origin, key: keyof PretrainConfig) => string): void {
  const check = (ok: boolean, key: keyof PretrainConfig, valid: string): void => {
    if (!ok) throw new Error(`invalid ${named(c, origin, key)}: ${valid}`);
  };
  const v3 = c.mechanism === 'mocov3';
  const mech = named(c, origin, 'mechanism');
  check((OPTIMIZERS as readonly string[]).includes(c.optimizer as string), 'optimizer', `one of ${OPTIMIZERS.join(', ')}`);
  check(v3 || c.optimizer === 'sgd', 'optimizer', `LARS and AdamW are MoCo v3's optimizers (here ${mech}); pass --mechanism mocov3 (or a mocov3 preset), or --optimizer sgd`);
  check(typeof c.warmupEpochs === 'number' && c.warmupEpochs >= 0 && Number.isFinite(c.warmupEpochs), 'warmupEpochs', 'a number ≥ 0');
  check(c.warmupEpochs <= c.epochs, 'warmupEpochs', `at most ${named(c, origin, 'epochs')}`);
  check(v3 || c.warmupEpochs === 0, 'warmupEpochs', `the per-iteration warm-up is MoCo v3's schedule (here ${mech}); pass --mechanism mocov3, or --warmup-epochs 0`);
  check(typeof c.mocoMCos === 'boolean', 'mocoMCos', 'true or false');
  check(v3 || !c.mocoMCos, 'mocoMCos', `the cosine momentum schedule is MoCo v3's (here ${mech}); pass --mechanism mocov3, or drop --moco-m-cos`);
  check(isInt(c.mlpDim, 1), 'mlpDim', 'a positive integer');
  check(typeof c.cropMin === 'number' && c.cropMin >= 0 && c.cropMin <= 1, 'cropMin', "a number in (0, 1], or 0 for the augmentation preset's own");
  check(isInt(c.patchSize, 1), 'patchSize', 'a positive integer');
  check(isInt(c.vitDepth, 0), 'vitDepth', "an integer ≥ 0 (0: the arch's own, 12)");
  check(typeof c.stopGradConv1 === 'boolean', 'stopGradConv1', 'true or false');
  const vit = isViTArch(c.arch);
  check(!vit || v3, 'arch', `a Vision Transformer is a MoCo v3 backbone (here ${mech}); pass --mechanism mocov3, or a ResNet arch`);
  check(!c.stopGradConv1 || vit, 'stopGradConv1', `freezes a ViT's patch projection; ${named(c, origin, 'arch')} is not a ViT: pass -a vit_small|vit_base|vit_tiny, or drop --stop-grad-conv1`);
  check(!vit || !c.cifarStem, 'cifarStem', `is a ResNet stem; ${named(c, origin, 'arch')} is a ViT: drop --cifar-stem (use --patch-size for small images)`);
  check(!vit || c.imageSize % c.patchSize === 0, 'patchSize', `must divide ${named(c, origin, 'imageSize')} (the ViT's patch grid)`);
  check(!v3 || c.bnSplits === 1, 'bnSplits', `MoCo v3 uses plain BN over the batch (no key shuffle, no split BN); pass --bn-splits 1 with ${mech}`);
}
