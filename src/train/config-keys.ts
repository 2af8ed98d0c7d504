// The names of the pre-training settings outside the command line: the keys of --config files and of sweep grids
// (--grid, --grid-file). One vocabulary, `moco pretrain`'s flag names without the dashes (`batch-size`, `moco-k`,
// `mlp`), with the camelCase keys of a run's config.json (`batchSize`, `K`) accepted as aliases so that a
// config.json can be passed back as --config. Values are parsed as the flags parse them, then validated with them.
import type { PretrainConfig } from './config.js';
import { SETTINGS, camelKey, type Setting, type SettingKind } from './settings.js';

/** Spelling-insensitive form, for suggestions: `batch_size`, `BatchSize` and `batch-size` all read `batchsize`. */
const loose = (key: string): string => key.toLowerCase().replace(/[-_]/g, '');

// Each accepted spelling → its setting: the flag name, its camelCase, and the config.json field of plain settings.
const BY_NAME = new Map<string, Setting>();
for (const s of SETTINGS) {
  BY_NAME.set(s.key, s);
  BY_NAME.set(camelKey(s.key), s);
  if (!s.to && !BY_NAME.has(s.field)) BY_NAME.set(s.field, s);
}

/** How messages name the setting of a config field: its flag (`--moco-k`), or its key where it has no flag. */
export function flagOf(field: keyof PretrainConfig): string {
  const s = SETTINGS.find((x) => x.field === field && !x.to);
  return s ? (s.flag ?? `--${s.negate ? 'no-' : ''}${s.key}`) : `--${String(field)}`;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
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
    if (d < bestD) {
      bestD = d;
      best = s.key;
    }
  }
  return best;
}

/**
 * The setting a key names (flag name, its camelCase, or config.json's field). An unknown key throws, naming it,
 * the nearest valid key and the vocabulary; a key outside `allowed` throws `excluded` (why it cannot be set there).
 * `where` prefixes the message (`--config run.yaml`, `--grid`).
 */
export function settingOf(
  key: string,
  where: string,
  allowed: readonly Setting[] = SETTINGS,
  excluded = 'cannot be set here',
): Setting {
  const s = BY_NAME.get(key);
  if (s && allowed.includes(s)) return s;
  if (s) throw new Error(`${where}: '${key}' ${excluded}`);
  throw new Error(
    `${where}: unknown key '${key}'; did you mean '${nearestKey(key, allowed)}'? Keys are moco pretrain's flag names without the dashes (batch-size, moco-k, mlp, …; see moco pretrain --help)`,
  );
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
    if (before !== undefined)
      throw new Error(`${where}: '${key}' and '${before}' set the same setting (${flagOf(s.field)}); keep one`);
    seen.set(s.field, key);
    try {
      Object.assign(out, settingValue(s, v));
    } catch (e) {
      throw new Error(`${where}: ${key}: ${(e as Error).message}`, { cause: e });
    }
  }
  return out;
}
