// The pre-training settings, each declared once: its flag, config field, kind, default, valid values and help.
// Everything else that names a setting reads this table: `moco pretrain`'s (and `moco sweep`'s) commander options
// and the overrides they give, the keys of --config files and sweep grids (config-keys.ts), the run defaults and
// validation of resolveConfig (config.ts), and docs/cli.md (`npm run docs:cli`). Which value each preset gives a
// setting stays in moco/presets.ts (a lower layer, which cannot import this one).
import { DEFAULT_PRESET, MECHANISMS, type Recipe } from '../moco/index.js';
import { ARCHS, VIT_ARCHS } from '../models/index.js';
import { OPTIMIZERS } from '../optim/index.js';
import { isPresetName } from '../data/index.js';
import type { PretrainConfig } from './config.js';

/** How a setting's value is written: as the flag's argument, or its YAML/JSON equivalent. */
export type SettingKind = 'int' | 'num' | 'bool' | 'str' | 'ints';

/** The values a setting accepts: the test and how error messages describe the valid ones. */
export interface Valid {
  ok: (v: unknown) => boolean;
  /** Shown after `invalid --flag value:`, e.g. 'a positive integer'. */
  text: string;
}

/**
 * One pre-training setting as the table writes it. Without `value` or `computed` (and without `to`), the preset
 * gives its default.
 */
export interface SettingEntry {
  /** The flag without its dashes: also the key of --config files and grids. */
  key: string;
  /**
   * The field of PretrainConfig it sets: a string in the table, because PretrainConfig's table-only fields come
   * from the table ({@link TableSettings}); {@link Setting} is the checked form.
   */
  field: string;
  kind: SettingKind;
  /** The help of its flag (without the default, which is appended); for a setting without a flag, what it is. */
  help: string;
  /** The default of a setting no preset gives (RUN_DEFAULTS). */
  value?: unknown;
  /** A default resolveConfig works out (the machine's, the mechanism's, a pattern): how help describes it. */
  computed?: string;
  /** Valid values, also refused by the command line before the run (commander's choices). */
  choices?: readonly string[];
  /** Valid values otherwise; booleans are checked as such, and a setting with neither is not checked. */
  valid?: Valid;
  /** false: no flag (the data argument, and settings only a config file or preset sets). */
  cli?: false;
  /** The flag's argument name in help; default by kind: <n>, <x>, <name>, <list>. */
  arg?: string;
  /** One-letter alias, as main_moco.py's (-a, -b, -j). */
  short?: string;
  /** The flag turns the setting off: --no-<key>. */
  negate?: true;
  /** How messages name it when that is not `--key` (e.g. `-a/--arch`; a key without a flag has no dashes). */
  flag?: string;
  /** For flags that set another field's value: --mlp sets head, --aug-plus sets augment. */
  to?: (v: boolean) => unknown;
  /**
   * The table alone declares the field: PretrainConfig gets it as an optional field of the setting's kind
   * ({@link TableSettings}), absent unless given, so config.json and checkpoints of runs without it do not change.
   */
  optional?: true;
}

const isInt = (v: unknown, min: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min;
const intFrom = (min: number, text: string): Valid => ({ ok: (v) => isInt(v, min), text });
const number = (ok: (n: number) => boolean, text: string): Valid => ({
  ok: (v) => typeof v === 'number' && ok(v),
  text,
});
const POSITIVE = intFrom(1, 'a positive integer');
const NATURAL = intFrom(0, 'an integer ≥ 0');
const FRACTION = number((n) => n >= 0 && n < 1, 'a number in [0, 1)');
const AUG = (text: string): Valid => ({ ok: (v) => typeof v === 'string' && isPresetName(v), text });
const ALL_ARCHS = [...Object.keys(ARCHS), ...Object.keys(VIT_ARCHS)];

/** Every setting, in `moco pretrain --help` order. */
const TABLE = [
  {
    key: 'data',
    field: 'data',
    kind: 'str',
    cli: false,
    flag: '<data>',
    computed: 'the data argument',
    help: 'dataset: a folder, cifar10:DIR, cifar100:DIR or synthetic[:N] (the argument of moco pretrain)',
  },
  {
    key: 'preset',
    field: 'preset',
    kind: 'str',
    computed: DEFAULT_PRESET,
    help:
      'recipe: mocov1 (main_moco.py defaults), mocov2 (--mlp --moco-t 0.2 --aug-plus --cos), cifar (the ' +
      'official CIFAR-10 demo), mocov3 (ResNet-50, LARS), mocov3-vit-small, mocov3-vit-base (AdamW), ' +
      'mocov3-cifar (ResNet-18 CIFAR stem, LARS), mocov3-vit-cifar (ViT-Tiny 6 blocks, patch 4, AdamW)',
  },
  {
    key: 'arch',
    field: 'arch',
    kind: 'str',
    short: '-a',
    flag: '-a/--arch',
    valid: { ok: (v) => typeof v === 'string' && ALL_ARCHS.includes(v), text: `one of ${ALL_ARCHS.join(', ')}` },
    help: 'resnet18 | resnet34 | resnet50 | resnet101 | vit_tiny | vit_small | vit_base (ViTs: --mechanism mocov3)',
  },
  {
    key: 'init-from',
    field: 'initFrom',
    kind: 'str',
    optional: true,
    arg: '<ckpt>',
    computed: 'none: random weights',
    help:
      "a new run (epoch 0; fresh queue, optimizer and lr schedule) whose encoders start from a checkpoint's: " +
      'official MoCo v1/v2/v3 .pth.tar, a torchvision .pth, a run directory or .safetensors; the backbone must ' +
      'match -a, --width and --cifar-stem; config.json records it as FILE@sha256:HEX, which this also takes (not ' +
      'with --resume; docs/transfer.md)',
  },
  {
    key: 'lr',
    field: 'lr',
    kind: 'num',
    valid: number((n) => n > 0 && Number.isFinite(n), 'a number > 0'),
    help: 'initial learning rate',
  },
  {
    key: 'batch-size',
    field: 'batchSize',
    kind: 'int',
    short: '-b',
    valid: POSITIVE,
    help: 'total batch size (all processes)',
  },
  { key: 'epochs', field: 'epochs', kind: 'int', valid: POSITIVE, help: 'epochs to train' },
  {
    key: 'schedule',
    field: 'schedule',
    kind: 'ints',
    arg: '<epochs>',
    valid: { ok: (v) => Array.isArray(v) && v.every((x) => isInt(x, 0)), text: 'a list of epochs, e.g. 120,160' },
    help: 'step-LR milestones (×0.1), e.g. 120,160',
  },
  { key: 'cos', field: 'cos', kind: 'bool', help: 'cosine learning-rate schedule' },
  { key: 'momentum', field: 'momentum', kind: 'num', valid: FRACTION, help: 'SGD momentum' },
  { key: 'wd', field: 'wd', kind: 'num', valid: number((n) => n >= 0, 'a number ≥ 0'), help: 'weight decay' },
  { key: 'moco-dim', field: 'dim', kind: 'int', valid: POSITIVE, help: 'feature dimension' },
  { key: 'moco-k', field: 'K', kind: 'int', valid: POSITIVE, help: 'queue size (negative keys)' },
  { key: 'moco-m', field: 'm', kind: 'num', valid: FRACTION, help: 'key-encoder momentum' },
  { key: 'moco-t', field: 'T', kind: 'num', valid: number((n) => n > 0, 'a number > 0'), help: 'softmax temperature' },
  {
    key: 'head',
    field: 'head',
    kind: 'str',
    cli: false,
    flag: 'head (fc, or mlp as --mlp)',
    choices: ['fc', 'mlp'],
    help: 'projection head: fc, or mlp (MoCo v2; the flag is --mlp)',
  },
  {
    key: 'mlp',
    field: 'head',
    kind: 'bool',
    to: (v: boolean) => (v ? 'mlp' : 'fc'),
    help: 'MLP projection head (MoCo v2)',
  },
  {
    key: 'aug-plus',
    field: 'augment',
    kind: 'bool',
    to: (v: boolean) => (v ? 'mocov2' : 'mocov1'),
    help: 'MoCo v2 augmentation (blur added)',
  },
  {
    key: 'augment',
    field: 'augment',
    kind: 'str',
    arg: '<preset>',
    valid: AUG('mocov2, mocov1, cifar, mocov3, mocov3-cifar, eval, lincls-train'),
    help: 'augmentation preset: mocov2 | mocov1 | cifar',
  },
  {
    key: 'eval-augment',
    field: 'evalAugment',
    kind: 'str',
    cli: false,
    flag: 'eval-augment',
    valid: AUG('an augmentation preset, e.g. eval or cifar-eval'),
    help: 'deterministic preprocessing of the kNN monitor and feature extraction: eval or cifar-eval',
  },
  { key: 'cifar-stem', field: 'cifarStem', kind: 'bool', help: '3×3 stride-1 conv1 without max-pool (32×32 images)' },
  {
    key: 'width',
    field: 'width',
    kind: 'int',
    valid: intFrom(1, 'a positive integer (64 = torchvision)'),
    help: 'channels of the first ResNet stage (64 = torchvision)',
  },
  {
    key: 'image-size',
    field: 'imageSize',
    kind: 'int',
    arg: '<px>',
    valid: intFrom(8, 'an integer ≥ 8 (pixels)'),
    help: 'crop size of the views',
  },
  {
    key: 'bn-splits',
    field: 'bnSplits',
    kind: 'int',
    valid: POSITIVE,
    help: 'BN sub-batches (one-process ShuffleBN emulation); 1 = plain BN',
  },
  {
    key: 'shuffle-bn',
    field: 'shuffleBn',
    kind: 'bool',
    negate: true,
    value: true,
    help: 'do not shuffle the key batch',
  },
  {
    key: 'symmetric',
    field: 'symmetric',
    kind: 'bool',
    help: 'symmetric loss (both view orders), as the CIFAR demo option',
  },
  {
    key: 'mechanism',
    field: 'mechanism',
    kind: 'str',
    choices: MECHANISMS,
    help:
      'where the negatives come from (MoCo v1 Fig. 3): moco (key encoder + queue), end-to-end (the batch, ' +
      'gradients through both views), memory-bank (one stored vector per image); mocov3 (momentum encoder ' +
      'keys of the batch, predictor, both directions)',
  },
  {
    key: 'optimizer',
    field: 'optimizer',
    kind: 'str',
    choices: OPTIMIZERS,
    help: 'sgd, or lars / adamw (--mechanism mocov3 only)',
  },
  {
    key: 'warmup-epochs',
    field: 'warmupEpochs',
    kind: 'num',
    arg: '<n>',
    valid: number((n) => n >= 0 && Number.isFinite(n), 'a number ≥ 0'),
    help: 'MoCo v3: linear lr warm-up epochs, then a half-cosine; lr set every iteration',
  },
  {
    key: 'moco-m-cos',
    field: 'mocoMCos',
    kind: 'bool',
    help: 'MoCo v3: momentum rises from --moco-m to 1 on a half-cosine, set every iteration',
  },
  {
    key: 'moco-mlp-dim',
    field: 'mlpDim',
    kind: 'int',
    valid: POSITIVE,
    help: 'MoCo v3: hidden width of the projector and predictor MLPs',
  },
  { key: 'stop-grad-conv1', field: 'stopGradConv1', kind: 'bool', help: 'MoCo v3 ViT: frozen random patch projection' },
  {
    key: 'crop-min',
    field: 'cropMin',
    kind: 'num',
    valid: number((n) => n >= 0 && n <= 1, "a number in (0, 1], or 0 for the augmentation preset's own"),
    help: "lower scale of the random resized crop (0: the augmentation preset's own)",
  },
  { key: 'patch-size', field: 'patchSize', kind: 'int', valid: POSITIVE, help: 'ViT patch size' },
  {
    key: 'vit-depth',
    field: 'vitDepth',
    kind: 'int',
    valid: intFrom(0, "an integer ≥ 0 (0: the arch's own, 12)"),
    help: "ViT transformer blocks (0: the arch's own, 12)",
  },
  {
    key: 'loss',
    field: 'loss',
    kind: 'str',
    choices: ['infonce', 'ntxent'],
    value: 'infonce',
    help:
      "end-to-end's loss: infonce (N×N logits, MoCo v1) or ntxent (SimCLR's symmetric NT-Xent, " + '2N−2 negatives)',
  },
  {
    key: 'bank-sampling',
    field: 'bankSampling',
    kind: 'str',
    arg: '<how>',
    choices: ['shared', 'per-sample'],
    value: 'shared',
    help: 'memory bank: --moco-k negatives drawn once per batch (shared) or for each sample (per-sample)',
  },
  {
    key: 'bank-momentum',
    field: 'bankMomentum',
    kind: 'num',
    valid: FRACTION,
    value: 0.5,
    help: 'memory bank: m of v ← normalize(m·v + (1−m)·q)',
  },
  {
    key: 'lr-scaling',
    field: 'lrScaling',
    kind: 'str',
    arg: '<rule>',
    choices: ['none', 'linear'],
    computed: 'linear for --mechanism end-to-end and mocov3, else none',
    help: "linear: use --lr × batch / 256 (main_moco.py's rule), none",
  },
  {
    key: 'train-subset',
    field: 'trainSubset',
    kind: 'int',
    valid: NATURAL,
    value: 0,
    help: 'train on a seeded random subset of N images',
  },
  {
    key: 'max-steps',
    field: 'maxSteps',
    kind: 'int',
    valid: NATURAL,
    value: 0,
    help: 'stop after N optimizer steps in total',
  },
  {
    key: 'seed',
    field: 'seed',
    kind: 'int',
    valid: intFrom(0, 'a non-negative integer'),
    value: 0,
    help: 'seed of everything random',
  },
  {
    key: 'workers',
    field: 'workers',
    kind: 'int',
    short: '-j',
    valid: NATURAL,
    value: 2,
    help:
      'worker threads that decode and augment image files while the model trains (images small enough to hold ' +
      'in memory are augmented between steps instead)',
  },
  { key: 'threads', field: 'threads', kind: 'int', valid: POSITIVE, computed: 'all cores', help: 'libtorch threads' },
  {
    key: 'device',
    field: 'device',
    kind: 'str',
    arg: '<dev>',
    value: 'cpu',
    valid: { ok: (v) => typeof v === 'string' && /^(cpu|cuda(:\d+)?)$/.test(v), text: "'cpu' or 'cuda[:N]'" },
    help: 'cpu or cuda[:N]',
  },
  {
    key: 'amp',
    field: 'amp',
    kind: 'str',
    arg: '<mode>',
    choices: ['off', 'bf16'],
    value: 'off',
    help:
      'mixed precision: bf16 = forward under autocast in bfloat16, fp32 master weights (CUDA; CPUs with ' +
      'AVX-512 BF16/AMX, others emulate it slowly)',
  },
  {
    key: 'channels-last',
    field: 'channelsLast',
    kind: 'bool',
    value: false,
    help: 'weights and views in channels-last (NHWC) memory',
  },
  {
    key: 'out',
    field: 'out',
    kind: 'str',
    arg: '<dir>',
    value: '',
    computed: 'runs/<preset>-<time>',
    help: 'run directory',
  },
  {
    key: 'knn-every',
    field: 'knnEvery',
    kind: 'int',
    arg: '<epochs>',
    valid: NATURAL,
    value: 0,
    help: 'kNN monitor every E epochs on the labelled test/val split (0 = off)',
  },
  { key: 'knn-k', field: 'knnK', kind: 'int', valid: POSITIVE, value: 200, help: 'kNN neighbours' },
  {
    key: 'knn-t',
    field: 'knnT',
    kind: 'num',
    valid: number((n) => n > 0, 'a number > 0'),
    value: 0.1,
    help: 'kNN temperature',
  },
  {
    key: 'knn-feature',
    field: 'knnFeature',
    kind: 'str',
    arg: '<kind>',
    choices: ['head', 'backbone'],
    value: 'head',
    help: 'kNN monitor features: head (the 128-d output, as the CIFAR demo) or backbone',
  },
  {
    key: 'online-probe',
    field: 'onlineProbe',
    kind: 'bool',
    optional: true,
    computed: 'off',
    valid: { ok: (v) => v === undefined || typeof v === 'boolean', text: 'true or false' },
    help:
      'train a linear classifier on the detached backbone features of each step alongside (labelled data): ' +
      'eval/online_top1, and eval/online_val_top1 at the kNN monitor times',
  },
  {
    key: 'save-every-steps',
    field: 'saveEverySteps',
    kind: 'int',
    valid: NATURAL,
    value: 0,
    help: 'also checkpoint every N steps',
  },
  {
    key: 'keep-checkpoints',
    field: 'keepCheckpoints',
    kind: 'int',
    valid: POSITIVE,
    value: 3,
    help: 'checkpoints kept in the run directory',
  },
  {
    key: 'print-freq',
    field: 'printFreq',
    kind: 'int',
    valid: POSITIVE,
    value: 10,
    help: 'log a line every N steps when not on a terminal',
  },
] as const satisfies readonly SettingEntry[];

/** One pre-training setting, its field checked to be one of PretrainConfig's. */
export type Setting = SettingEntry & { field: keyof PretrainConfig };

/** Every pre-training setting, in `moco pretrain --help` order. */
export const SETTINGS: readonly Setting[] = TABLE;

/** `batch-size` → `batchSize`: how commander names a flag's value, and config.json's alias of a key. */
export const camelKey = (key: string): string => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The camelCase of a flag name, as a type: what commander calls the value of the flag `key`. */
export type Camel<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;

type Entry = (typeof TABLE)[number];

/** The flags that set another setting's field (--mlp, --aug-plus), by their commander names. */
export type AliasFlags = { [E in Extract<Entry, { to: unknown }> as Camel<E['key']>]?: boolean };

/** What a setting's value is, by its kind. */
interface KindType {
  int: number;
  num: number;
  bool: boolean;
  str: string;
  ints: number[];
}

/**
 * The PretrainConfig fields only the table declares (entries with `optional: true`), each of its kind; see the
 * entry's help for what it means.
 */
export type TableSettings = {
  [E in Extract<Entry, { optional: true }> as E['field']]?: KindType[E['kind']];
};

// Compile-time checks that the table and PretrainConfig agree: each alias names the fields a wrong entry has.
/** Compiles only when T is never; otherwise the error shows T. */
type None<T extends never> = T;
/** Fields of PretrainConfig that no entry sets. */
export type SettingsMissing = None<Exclude<keyof PretrainConfig, Entry['field']>>;
/** Entries whose kind does not hold the field's type. */
export type SettingsOfWrongKind = None<
  Entry extends infer E
    ? E extends { to: unknown }
      ? never
      : E extends { field: infer F extends keyof PretrainConfig; kind: infer K extends SettingKind }
        ? NonNullable<PretrainConfig[F]> extends KindType[K]
          ? never
          : F
        : never
    : never
>;
/** Entries whose default or choices are not values of the field. */
export type SettingsWithForeignValues = None<
  | (Entry extends infer E
      ? E extends { field: infer F extends keyof PretrainConfig; value: infer V }
        ? [V] extends [PretrainConfig[F]]
          ? never
          : F
        : never
      : never)
  | (Entry extends infer E
      ? E extends { field: infer F extends keyof PretrainConfig; choices: readonly (infer C)[] }
        ? [C] extends [PretrainConfig[F]]
          ? never
          : F
        : never
      : never)
>;
/** Defaults from a preset that no recipe has, and recipe settings given a run default (the preset would win). */
export type SettingsWithMisplacedDefaults = None<
  | Exclude<Exclude<Entry, { to: unknown } | { value: unknown } | { computed: string }>['field'], keyof Recipe>
  | Extract<Extract<Entry, { value: unknown } | { computed: string }>['field'], keyof Recipe>
>;

/** The values a setting accepts (its `valid`, its choices, or true/false); undefined: any. */
export function validOf(s: Setting): Valid | undefined {
  if (s.valid) return s.valid;
  const c = s.choices;
  if (c) {
    const text = c.length === 2 ? `'${c[0]}' or '${c[1]}'` : `one of ${c.join(', ')}`;
    return { ok: (v) => typeof v === 'string' && c.includes(v), text };
  }
  if (s.kind === 'bool') return { ok: (v) => typeof v === 'boolean', text: 'true or false' };
  return undefined;
}
