// The resolved configuration of a pre-training run: recipe defaults ← config file ← command-line flags,
// validated before any work so that a bad value is reported by its flag with the valid range.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  DEFAULT_PRESET,
  RECIPE_FALLBACKS,
  isViTArch,
  recipe,
  type BankSampling,
  type EndToEndLoss,
  type Recipe,
} from '../moco/index.js';
import { flagOf, settingsFromObject } from './config-keys.js';
import { SETTINGS, camelKey, validOf, type AliasFlags, type TableSettings } from './settings.js';

export { flagOf };

/** A run's settings: the recipe's, the run's below, and those only the settings table declares (TableSettings). */
export interface PretrainConfig extends Recipe, TableSettings {
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

// The order of config.json's first keys (and of the config in each checkpoint's metadata, which its SHA-256 covers):
// as runs have always written them, so that a run is byte for byte the same. Run defaults not listed follow in
// table order.
const RECORDED_ORDER: readonly (keyof PretrainConfig)[] = [
  'out',
  'seed',
  'device',
  'workers',
  'trainSubset',
  'maxSteps',
  'saveEverySteps',
  'keepCheckpoints',
  'knnEvery',
  'knnK',
  'knnT',
  'knnFeature',
  'printFreq',
  'shuffleBn',
  'loss',
  'bankSampling',
  'bankMomentum',
  'amp',
  'channelsLast',
];

/**
 * The defaults of the settings that are not the recipe's (a preset sets those), as a run gets them when neither
 * a --config file nor a flag gives them: the `value`s of the settings table. `threads` is the machine's core count
 * and `lrScaling` follows the mechanism (see PretrainConfig), so neither is here; `out` '' is runs/<preset>-<time>.
 */
export const RUN_DEFAULTS: Readonly<Partial<PretrainConfig>> = Object.fromEntries([
  ...RECORDED_ORDER.map((field) => [field, SETTINGS.find((s) => s.field === field && !s.to)!.value]),
  ...SETTINGS.filter((s) => 'value' in s && !RECORDED_ORDER.includes(s.field)).map((s) => [s.field, s.value]),
]) as Partial<PretrainConfig>;

/**
 * Flags as the command line gives them (camelCase of the flag names, as PretrainConfig's fields where they set
 * one; --mlp and --aug-plus as `mlp` and `augPlus`); undefined = not given.
 */
export type ConfigOverrides = Partial<PretrainConfig> & { config?: string } & AliasFlags;

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
    throw new Error(`--config ${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  try {
    const v: unknown = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v))
      throw new Error('expected an object of settings, e.g. batch-size: 64');
    return settingsFromObject(v as Record<string, unknown>, `--config ${path}`);
  } catch (e) {
    const m = (e as Error).message;
    throw new Error(m.startsWith('--config ') ? m : `--config ${path}: ${m}`, { cause: e });
  }
}

// The flags that set another setting's field (`mlp` sets head), by their ConfigOverrides names.
const ALIASES = new Map(SETTINGS.filter((s) => s.to).map((s) => [camelKey(s.key), s]));

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
    throw new Error(
      `the data argument '${data}' is not the resumed run's data '${base.data}' (recorded in ${base.out || 'its checkpoint'}); leave the data argument out to continue on the run's own data, or start a new run with another --out`,
    );
  }
  const file = flags.config ? readConfigFile(flags.config) : {};
  const presetName = flags.preset ?? file.preset ?? base?.preset ?? DEFAULT_PRESET;
  // A resumed run's config from before a setting existed reads that setting as v1/v2 runs had it.
  const r = base ? { ...RECIPE_FALLBACKS, ...base } : { ...recipe(presetName), preset: presetName };
  const defaults = {
    ...RUN_DEFAULTS,
    ...r,
    data,
    preset: presetName,
    threads: availableParallelism(),
    lrScaling: undefined as unknown as PretrainConfig['lrScaling'],
  } as PretrainConfig;
  const merged: PretrainConfig = { ...defaults, ...(base ?? {}), ...file };
  // Where each value came from, so that an error about a value the user never typed says whose it is.
  const origin: Origin = {};
  for (const k of Object.keys(r) as (keyof PretrainConfig)[])
    origin[k] = base ? `the resumed run's config` : `preset ${presetName}`;
  for (const k of Object.keys(file) as (keyof PretrainConfig)[]) origin[k] = `--config ${flags.config}`;
  const { config: _c, ...rest } = flags as Record<string, unknown>;
  const set = (field: keyof PretrainConfig, v: unknown): void => {
    (merged as unknown as Record<string, unknown>)[field] = v;
    delete origin[field];
  };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined && !ALIASES.has(k)) set(k as keyof PretrainConfig, v);
  // After the fields themselves, so --mlp wins over a head given beside it; as the flags only turn them on,
  // false sets nothing.
  for (const [k, s] of ALIASES) if (rest[k]) set(s.field, s.to!(true));
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
export function keysPerStep(c: Pick<PretrainConfig, 'batchSize' | 'symmetric'>): number {
  return c.batchSize * (c.symmetric ? 2 : 1);
}

/**
 * Rejects values no run could use, naming the flag, where its value came from, and the valid range: first each
 * setting on its own (the settings table's valid values), then the combinations that make no run.
 */
export function validate(c: PretrainConfig, origin: Origin = {}): void {
  const check = (ok: boolean, key: keyof PretrainConfig, valid: string): void => {
    if (!ok) throw new Error(`invalid ${named(c, origin, key)}: ${valid}`);
  };
  for (const s of SETTINGS) {
    const valid = s.to ? undefined : validOf(s);
    if (valid) check(valid.ok(c[s.field]), s.field, valid.text);
  }
  check(
    c.loss === 'infonce' || c.mechanism === 'end-to-end',
    'loss',
    `NT-Xent is a loss of --mechanism end-to-end (here ${named(c, origin, 'mechanism')}); drop --loss or pass --mechanism end-to-end`,
  );
  check(
    !c.symmetric || c.mechanism === 'moco',
    'symmetric',
    `the symmetric loss is MoCo's (here ${named(c, origin, 'mechanism')}); for a symmetric end-to-end loss pass --loss ntxent`,
  );
  validateV3(c, origin, named);
  const perStep = keysPerStep(c);
  check(
    c.mechanism !== 'moco' || c.K >= perStep,
    'K',
    `must be at least the keys enqueued per step (${named(c, origin, 'batchSize')}${c.symmetric ? ' × 2 for --symmetric' : ''} = ${perStep}); pass --moco-k ${perStep} or more, or a smaller --batch-size`,
  );
  check(
    c.batchSize % c.bnSplits === 0,
    'bnSplits',
    `must divide ${named(c, origin, 'batchSize')}; pass --bn-splits ${divisorsText(c.batchSize)}`,
  );
}

/**
 * The combinations of MoCo v3's settings that make no run. Decided: LARS and AdamW (and the per-iteration
 * warm-up and momentum schedules that come with them) are MoCo v3's: with --mechanism moco, end-to-end or
 * memory-bank they are refused, as are ViT archs (their encoders build a ResNet and swap its fc). MoCo v3 runs
 * with any of sgd, lars, adamw, always on the per-iteration warm-up + half-cosine lr.
 */
function validateV3(
  c: PretrainConfig,
  origin: Origin,
  named: (c: PretrainConfig, origin: Origin, key: keyof PretrainConfig) => string,
): void {
  const check = (ok: boolean, key: keyof PretrainConfig, valid: string): void => {
    if (!ok) throw new Error(`invalid ${named(c, origin, key)}: ${valid}`);
  };
  const v3 = c.mechanism === 'mocov3';
  const mech = named(c, origin, 'mechanism');
  check(
    v3 || c.optimizer === 'sgd',
    'optimizer',
    `LARS and AdamW are MoCo v3's optimizers (here ${mech}); pass --mechanism mocov3 (or a mocov3 preset), or --optimizer sgd`,
  );
  check(c.warmupEpochs <= c.epochs, 'warmupEpochs', `at most ${named(c, origin, 'epochs')}`);
  check(
    v3 || c.warmupEpochs === 0,
    'warmupEpochs',
    `the per-iteration warm-up is MoCo v3's schedule (here ${mech}); pass --mechanism mocov3, or --warmup-epochs 0`,
  );
  check(
    v3 || !c.mocoMCos,
    'mocoMCos',
    `the cosine momentum schedule is MoCo v3's (here ${mech}); pass --mechanism mocov3, or drop --moco-m-cos`,
  );
  const vit = isViTArch(c.arch);
  check(
    !vit || v3,
    'arch',
    `a Vision Transformer is a MoCo v3 backbone (here ${mech}); pass --mechanism mocov3, or a ResNet arch`,
  );
  check(
    !c.stopGradConv1 || vit,
    'stopGradConv1',
    `freezes a ViT's patch projection; ${named(c, origin, 'arch')} is not a ViT: pass -a vit_small|vit_base|vit_tiny, or drop --stop-grad-conv1`,
  );
  check(
    !vit || !c.cifarStem,
    'cifarStem',
    `is a ResNet stem; ${named(c, origin, 'arch')} is a ViT: drop --cifar-stem (use --patch-size for small images)`,
  );
  check(
    !vit || c.imageSize % c.patchSize === 0,
    'patchSize',
    `must divide ${named(c, origin, 'imageSize')} (the ViT's patch grid)`,
  );
  check(
    !v3 || c.bnSplits === 1,
    'bnSplits',
    `MoCo v3 uses plain BN over the batch (no key shuffle, no split BN); pass --bn-splits 1 with ${mech}`,
  );
}
