// The names of the pre-training settings outside the command line: the keys of --config files and of sweep grids
// (--grid, --grid-file). One vocabulary, `moco pretrain`'s flag names without the dashes (`batch-size`, `moco-k`,
// `mlp`), with the camelCase keys of a run's config.json (`batchSize`, `K`) accepted as aliases so that a
// config.json can be passed back as --config. Values are parsed as the flags parse them, then validated with them.
import type { PretrainConfig } from './config.js';

/** How a setting's value is written: as the flag's argument, or its YAML/JSON equivalent. */
export type SettingKind = 'int' | 'num' | 'bool' | 'str' | 'ints';

/** One pre-training setting as a key of config files and grids. */
export interface Setting {
  /** The flag without its dashes (the canonical key). */
  key: string;
  /** The field of PretrainConfig it sets. */
  field: keyof PretrainConfig;
  kind: SettingKind;
  /** How messages name it when that is not `--key` (e.g. `-a/--arch`; a key without a flag has no dashes). */
  flag?: string;
  /** For flags that set another field's value: --mlp sets head, --aug-plus sets augment. */
  to?: (v: boolean) => unknown;
}

/** Every setting, in `moco pretrain --help` order. */
export const SETTINGS: readonly Setting[] = [
  { key: 'data', field: 'data', kind: 'str', flag: '<data>' },
  { key: 'preset', field: 'preset', kind: 'str' },
  { key: 'arch', field: 'arch', kind: 'str', flag: '-a/--arch' },
  { key: 'lr', field: 'lr', kind: 'num' },
  { key: 'batch-size', field: 'batchSize', kind: 'int' },
  { key: 'epochs', field: 'epochs', kind: 'int' },
  { key: 'schedule', field: 'schedule', kind: 'ints' },
  { key: 'cos', field: 'cos', kind: 'bool' },
  { key: 'momentum', field: 'momentum', kind: 'num' },
  { key: 'wd', field: 'wd', kind: 'num' },
  { key: 'moco-dim', field: 'dim', kind: 'int' },
  { key: 'moco-k', field: 'K', kind: 'int' },
  { key: 'moco-m', field: 'm', kind: 'num' },
  { key: 'moco-t', field: 'T', kind: 'num' },
  { key: 'head', field: 'head', kind: 'str', flag: 'head (fc, or mlp as --mlp)' },
  { key: 'mlp', field: 'head', kind: 'bool', to: (v) => (v ? 'mlp' : 'fc') },
  { key: 'augment', field: 'augment', kind: 'str' },
  { key: 'aug-plus', field: 'augment', kind: 'bool', to: (v) => (v ? 'mocov2' : 'mocov1') },
  { key: 'eval-augment', field: 'evalAugment', kind: 'str', flag: 'eval-augment' },
  { key: 'cifar-stem', field: 'cifarStem', kind: 'bool' },
  { key: 'width', field: 'width', kind: 'int' },
  { key: 'image-size', field: 'imageSize', kind: 'int' },
  { key: 'bn-splits', field: 'bnSplits', kind: 'int' },
  { key: 'shuffle-bn', field: 'shuffleBn', kind: 'bool', flag: '--no-shuffle-bn' },
  { key: 'symmetric', field: 'symmetric', kind: 'bool' },
  { key: 'mechanism', field: 'mechanism', kind: 'str' },
  { key: 'loss', field: 'loss', kind: 'str' },
  { key: 'bank-sampling', field: 'bankSampling', kind: 'str' },
  { key: 'bank-momentum', field: 'bankMomentum', kind: 'num' },
  { key: 'lr-scaling', field: 'lrScaling', kind: 'str' },
  { key: 'optimizer', field: 'optimizer', kind: 'str' },
  { key: 'warmup-epochs', field: 'warmupEpochs', kind: 'num' },
  { key: 'moco-m-cos', field: 'mocoMCos', kind: 'bool' },
  { key: 'moco-mlp-dim', field: 'mlpDim', kind: 'int' },
  { key: 'stop-grad-conv1', field: 'stopGradConv1', kind: 'bool' },
  { key: 'crop-min', field: 'cropMin', kind: 'num' },
  { key: 'patch-size', field: 'patchSize', kind: 'int' },
  { key: 'vit-depth', field: 'vitDepth', kind: 'int' },
  { key: 'train-subset', field: 'trainSubset', kind: 'int' },
  { key: 'max-steps', field: 'maxSteps', kind: 'int' },
  { key: 'seed', field: 'seed', kind: 'int' },
  { key: 'workers', field: 'workers', kind: 'int' },
  { key: 'threads', field: 'threads', kind: 'int' },
  { key: 'device', field: 'device', kind: 'str' },
  { key: 'amp', field: 'amp', kind: 'str' },
  { key: 'channels-last', field: 'channelsLast', kind: 'bool' },
  { key: 'out', field: 'out', kind: 'str' },
  { key: 'knn-every', field: 'knnEvery', kind: 'int' },
  { key: 'knn-k', field: 'knnK', kind: 'int' },
  { key: 'knn-t', field: 'knnT', kind: 'num' },
  { key: 'knn-feature', field: 'knnFeature', kind: 'str' },
  { key: 'save-every-steps', field: 'saveEverySteps', kind: 'int' },
  { key: 'keep-checkpoints', field: 'keepCheckpoints', kind: 'int' },
  { key: 'print-freq', field: 'printFreq', kind: 'int' },
];

const camel = (key: string): string => key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
/** Spelling-insensitive form, for suggestions: `batch_size`, `BatchSize` and `batch-size` all read `batchsize`. */
const loose = (key: string): string => key.toLowerCase().replace(/[-_]/g, '');

// Each accepted spelling → its setting: the flag name, its camelCase, and the config.json field of plain settings.
const BY_NAME = new Map<string, Setting>();
for (const s of SETTINGS) {
  BY_NAME.set(s.key, s);
  BY_NAME.set(camel(s.key), s);
  if (!s.to && !BY_NAME.has(s.field)) BY_NAME.set(s.field, s);
}

/** How messages name the setting of a config field: its flag (`--moco-k`), or its key where it has no flag. */
export function flagOf(field: keyof PretrainConfig): string {
  const s = SETTINGS.find((x) => x.field === field && !x.to);
  return s ? (s.flag ?? `--${s.key}`) : `--${String(field)}`;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The canonical key nearest to `key` among `allowed` (spelling-insensitive edit distance over every alias). */
export function nearestKey(key: string, allowed: readonly Setting[] = SETTINGS): string {
  let best = allowed[0]!.key;
  let bestD = Infinity;
  for (const [name, s] of BY_NAME) {
    if (!allowed.includes(s)) continue;
    const d = distance(loose(key), loose(name));
    if (d < bestD) { bestD = d; best = s.key; }
  }
  return best;
}

/**
 * The setting a key names (flag name, its camelCase, or config.json's field). An unknown key throws, naming it,
 * the nearest valid key and the vocabulary; a key outside `allowed` throws `excluded` (why it cannot be set there).
 * `where` prefixes the message (`--config run.yaml`, `--grid`).
 */
export function settingOf(key: string, where: string, allowed: readonly Setting[] = SETTINGS, excluded = 'cannot be set here'): Setting {
  const s = BY_NAME.get(key);
  if (s && allowed.includes(s)) return s;
  if (s) throw new Error(`${where}: '${key}' ${excluded}`);
  throw new Error(`${where}: unknown key '${key}'; did you mean '${nearestKey(key, allowed)}'? Keys are moco pretrain's flag names without the dashes (batch-size, moco-k, mlp, …; see moco pretrain --help)`);
}

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

function parseValue(kind: SettingKind, v: unknown): unknown {
  const int = (x: unknown): number | undefined => {
    const n = typeof x === 'string' && /^\s*-?\d+\s*$/.test(x) ? Number(x) : x;
    return typeof n === 'number' && Number.isInteger(n) ? n : undefined;
  };
  switch (kind) {
    case 'int': {
      const n = int(v);
      if (n === undefined) throw new Error(`expects an integer, got ${show(v)}`);
      return n;
    }
    case 'num': {
      const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`expects a number, got ${show(v)}`);
      return n;
    }
    case 'bool':
      if (v === true || v === 'true') return true;
      if (v === false || v === 'false') return false;
      throw new Error(`expects true or false, got ${show(v)}`);
    case 'str':
      if (typeof v !== 'string' || v === '') throw new Error(`expects a name, got ${show(v)}`);
      return v;
    case 'ints': {
      const list = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',') : [v];
      const ns = list.map(int);
      if (ns.some((n) => n === undefined)) throw new Error(`expects a list of integers (e.g. 120,160), got ${show(v)}`);
      return ns;
    }
  }
}

/** The config fields one setting's value sets, parsed as its flag parses it; a bad value throws the reason only. */
export function settingValue(s: Setting, v: unknown): Partial<PretrainConfig> {
  const parsed = parseValue(s.kind, v);
  return { [s.field]: s.to ? s.to(parsed as boolean) : parsed } as Partial<PretrainConfig>;
}

/**
 * A config file's object of settings as config fields: every key normalised (unknown keys and one setting given
 * twice are errors), every value parsed as its flag's. `where` names the file in messages.
 */
export function settingsFromObject(obj: Record<string, unknown>, where: string): Partial<PretrainConfig> {
  const out: Partial<PretrainConfig> = {};
  const seen = new Map<keyof PretrainConfig, string>();
  for (const [key, v] of Object.entries(obj)) {
    const s = settingOf(key, where);
    const before = seen.get(s.field);
    if (before !== undefined) throw new Error(`${where}: '${key}' and '${before}' set the same setting (${flagOf(s.field)}); keep one`);
    seen.set(s.field, key);
    try {
      Object.assign(out, settingValue(s, v));
    } catch (e) {
      throw new Error(`${where}: ${key}: ${(e as Error).message}`);
    }
  }
  return out;
}
