// The grid of a sweep: `key=v1,v2 key=v1,v2` (flags) or a YAML/JSON file mapping keys to lists; every cell is
// one combination, the first key varying slowest. Keys are pre-training flag names without the dashes, as in
// --config files (config-keys.ts), and values are parsed as the flags parse them.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ConfigOverrides } from './config.js';
import { settingOf, settingValue } from './config-keys.js';
import { SETTINGS, type Setting } from './settings.js';

/** One key of the grid and the values it takes (as written). */
export interface GridAxis {
  key: string;
  values: string[];
}

/** One combination of the grid. */
export interface GridCell {
  /** A file-system-safe name, e.g. `moco-t=0.07_mlp=false`: the cell's run directory. */
  name: string;
  /** Grid key → value. */
  values: Record<string, string>;
}

// Any setting but the ones that say where a sweep's runs live: each cell's run directory is the sweep's.
const GRID_SETTINGS: readonly Setting[] = SETTINGS.filter((s) => s.field !== 'out' && s.field !== 'data');
const NOT_IN_GRID = "cannot vary in a grid: every cell trains on the sweep's <data> into --out DIR/cells/<cell>";

/** The grid keys: pre-training flag names without the dashes (config.json's camelCase keys are aliases). */
export const GRID_KEYS: readonly string[] = GRID_SETTINGS.map((s) => s.key);

function axis(key: string, values: string[], where: string): GridAxis {
  // One cell directory per setting however it is spelt: the key is its flag name.
  const s = settingOf(key, where, GRID_SETTINGS, NOT_IN_GRID);
  if (values.length === 0 || values.some((v) => v === ''))
    throw new Error(`${where}: '${key}' needs a comma-separated list of values, e.g. ${s.key}=a,b`);
  for (const v of values) cellValue(s, v, where);
  return { key: s.key, values };
}

function cellValue(s: Setting, v: string, where: string): ConfigOverrides {
  try {
    return settingValue(s, v);
  } catch (e) {
    throw new Error(`${where} ${s.key}=${v}: ${(e as Error).message}`, { cause: e });
  }
}

function checkAxes(axes: GridAxis[], where: string): GridAxis[] {
  if (axes.length === 0)
    throw new Error(`${where}: an empty grid; give key=v1,v2 pairs, e.g. "moco-t=0.07,0.2 mlp=false,true"`);
  const seen = new Set<string>();
  for (const a of axes) {
    if (seen.has(a.key)) throw new Error(`${where}: '${a.key}' is given twice`);
    seen.add(a.key);
  }
  return axes;
}

/** Parses `--grid "moco-t=0.07,0.2 mlp=false,true"`. */
export function parseGrid(spec: string): GridAxis[] {
  const axes = spec
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((part) => {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new Error(`--grid: '${part}' is not key=v1,v2 (e.g. moco-t=0.07,0.2)`);
      return axis(part.slice(0, eq), part.slice(eq + 1).split(','), '--grid');
    });
  return checkAxes(axes, '--grid');
}

/** Reads a grid file: YAML or JSON, an object of key → list of values (`moco-t: [0.07, 0.2]`). */
export function readGridFile(path: string): GridAxis[] {
  const where = `--grid-file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${where}: cannot read (${(e as Error).message})`, { cause: e });
  }
  let v: unknown;
  try {
    v = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`, { cause: e });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected an object of key: [values]`);
  const axes = Object.entries(v as Record<string, unknown>).map(([k, vals]) => {
    const list = Array.isArray(vals) ? vals : [vals];
    if (!list.every((x) => ['string', 'number', 'boolean'].includes(typeof x)))
      throw new Error(`${where}: '${k}' must be a list of numbers, strings or booleans`);
    return axis(k, list.map(String), where);
  });
  return checkAxes(axes, where);
}

/** Every combination of the axes, the first axis varying slowest. */
export function gridCells(axes: GridAxis[]): GridCell[] {
  let cells: Record<string, string>[] = [{}];
  for (const a of axes) cells = cells.flatMap((c) => a.values.map((v) => ({ ...c, [a.key]: v })));
  return cells.map((values) => ({
    name: Object.entries(values)
      .map(([k, v]) => `${k}=${v.replace(/[^A-Za-z0-9.+-]/g, '_')}`)
      .join('_'),
    values,
  }));
}

/** The config overrides of one cell. */
export function cellOverrides(cell: GridCell): ConfigOverrides {
  return Object.assign(
    {},
    ...Object.entries(cell.values).map(([k, v]) =>
      cellValue(settingOf(k, '--grid', GRID_SETTINGS, NOT_IN_GRID), v, '--grid'),
    ),
  ) as ConfigOverrides;
}
