// The pre-training settings as flags, named as main_moco.py's where they exist: shared by `moco pretrain` and
// `moco sweep` (whose grid cells are pre-training runs).
import { type Command, Option } from 'commander';
import {
  RUN_DEFAULTS,
  SETTINGS,
  camelKey,
  type ConfigOverrides,
  type Setting,
  type SettingKind,
} from '../../train/index.js';
import { DEFAULT_PRESET, recipe } from '../../moco/index.js';
import { int, num } from './flag-numbers.js';

/** A comma-separated list of integers (any sign; the setting's range is checked with the config). */
export const intList = (flag: string, v: string): number[] => v.split(',').map((s) => int(flag, s.trim(), -Infinity));

const ARG: Record<SettingKind, string> = { int: '<n>', num: '<x>', str: '<name>', bool: '', ints: '<list>' };
// The settings' ranges are checked with the config (their messages say what is valid), so these parse only.
const PARSE: Partial<Record<SettingKind, (flag: string, v: string) => unknown>> = {
  int: (flag, v) => int(flag, v, -Infinity),
  num,
  ints: intList,
};

/** The commander option of a setting: its flags, help, parser and choices (the default is appended later). */
function optionOf(s: Setting): Option {
  const long = `--${s.negate ? 'no-' : ''}${s.key}`;
  const arg = s.kind === 'bool' ? '' : ` ${s.arg ?? ARG[s.kind]}`;
  const o = new Option(`${s.short ? `${s.short}, ` : ''}${long}${arg}`, s.help);
  const parse = PARSE[s.kind];
  if (parse) o.argParser((v: string) => parse(`--${s.key}`, v));
  if (s.choices) o.choices(s.choices);
  return o;
}

/** Adds the flags of a pre-training config (everything config.json holds) to `cmd`: one per settings-table row. */
export function addPretrainOptions(cmd: Command): Command {
  for (const s of SETTINGS) {
    if (s.cli === false) continue;
    cmd.addOption(optionOf(s));
    if (s.key === 'preset') cmd.option('--config <file>', 'JSON or YAML file of settings (flags override it)');
  }
  return showDefaults(cmd);
}

const shown = (v: unknown): string =>
  typeof v === 'boolean' ? (v ? 'on' : 'off') : Array.isArray(v) ? v.join(',') : String(v);

/**
 * How help shows a setting's default: the default preset's value (and that it is the preset's), the run default,
 * or how the default is worked out. The values are the ones resolveConfig uses. A flag that turns a setting on
 * (--mlp) or off (--no-shuffle-bn) shows whether it is in effect by default.
 */
export function defaultText(s: Setting): string {
  if (s.computed !== undefined) return s.computed;
  const r = recipe(DEFAULT_PRESET);
  const value = ({ ...r, ...RUN_DEFAULTS } as Record<string, unknown>)[s.field];
  const on = s.to ? s.to(true) === value : s.negate ? value === false : value;
  return `${shown(s.kind === 'bool' ? on : value)}${s.field in r ? `, preset ${DEFAULT_PRESET}'s` : ''}`;
}

/** Appends each config flag's default to its help; --config's is none. */
function showDefaults(cmd: Command): Command {
  for (const opt of cmd.options) {
    const name = opt.attributeName();
    const s = SETTINGS.find((x) => camelKey(x.key) === name);
    const text = name === 'config' ? 'none' : s ? defaultText(s) : undefined;
    if (text !== undefined) opt.description = `${opt.description} (default: ${text})`;
  }
  return cmd;
}

/** The config overrides the flags of {@link addPretrainOptions} gave (undefined: not given). */
export function overridesFromFlags(f: Record<string, unknown>): ConfigOverrides {
  const o: Record<string, unknown> = { config: f.config };
  for (const s of SETTINGS) {
    if (s.cli === false) continue;
    const v = f[camelKey(s.key)];
    // A --no- flag's value is true unless given: only false is the user's word.
    if (s.negate) o[s.field] = v === false ? false : undefined;
    else o[s.to ? camelKey(s.key) : s.field] = v;
  }
  return o as ConfigOverrides;
}
