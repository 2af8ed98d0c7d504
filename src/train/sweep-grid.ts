// The grid of a sweep: `key=v1,v2 key=v1,v2` (flags) or a YAML/JSON file mapping keys to lists; every cell is
// one combination, the first key varying slowest. Keys are pre-training flag names without the dashes.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { ConfigOverrides } from './config.js';

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

const bool = (key: string, v: string): boolean => {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new Error(`--grid ${key}=${v}: expects true or false`);
};
const num = (key: string, v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`--grid ${key}=${v}: expects a number`);
  return n;
};
const int = (key: string, v: string): number => {
  const n = num(key, v);
  if (!Number.isInteger(n)) throw new Error(`--grid ${key}=${v}: expects an integer`);
  return n;
};
const str = <T extends string>(field: keyof ConfigOverrides) => (_k: string, v: string): ConfigOverrides => ({ [field]: v as T });

/** What each grid key sets in the pre-training config. */
const KEYS: Record<string, (key: string, v: string) => ConfigOverrides> = {
  'mlp': (k, v) => ({ head: bool(k, v) ? 'mlp' : 'fc' }),
  'aug-plus': (k, v) => ({ augment: bool(k, v) ? 'mocov2' : 'mocov1' }),
  'augment': str('augment'),
  'cos': (k, v) => ({ cos: bool(k, v) }),
  'symmetric': (k, v) => ({ symmetric: bool(k, v) }),
  'moco-t': (k, v) => ({ T: num(k, v) }),
  'moco-k': (k, v) => ({ K: int(k, v) }),
  'moco-m': (k, v) => ({ m: num(k, v) }),
  'moco-dim': (k, v) => ({ dim: int(k, v) }),
  'mechanism': str('mechanism'),
  'loss': str('loss'),
  'bank-sampling': str('bankSampling'),
  'bank-momentum': (k, v) => ({ bankMomentum: num(k, v) }),
  'lr-scaling': str('lrScaling'),
  'lr': (k, v) => ({ lr: num(k, v) }),
  'wd': (k, v) => ({ wd: num(k, v) }),
  'epochs': (k, v) => ({ epochs: int(k, v) }),
  'batch-size': (k, v) => ({ batchSize: int(k, v) }),
  'width': (k, v) => ({ width: int(k, v) }),
  'image-size': (k, v) => ({ imageSize: int(k, v) }),
  'arch': str('arch'),
  'seed': (k, v) => ({ seed: int(k, v) }),
};

export const GRID_KEYS: readonly string[] = Object.keys(KEYS);

function axis(key: string, values: string[], where: string): GridAxis {
  if (!KEYS[key]) throw new Error(`${where}: unknown grid key '${key}'; valid: ${GRID_KEYS.join(', ')}`);
  if (values.length === 0 || values.some((v) => v === '')) throw new Error(`${where}: '${key}' needs a comma-separated list of values, e.g. ${key}=a,b`);
  for (const v of values) KEYS[key]!(key, v);
  return { key, values };
}

function checkAxes(axes: GridAxis[], where: string): GridAxis[] {
  if (axes.length === 0) throw new Error(`${where}: an empty grid; give key=v1,v2 pairs, e.g. "moco-t=0.07,0.2 mlp=false,true"`);
  const seen = new Set<string>();
  for (const a of axes) {
    if (seen.has(a.key)) throw new Error(`${where}: '${a.key}' is given twice`);
    seen.add(a.key);
  }
  return axes;
}

/** Parses `--grid "moco-t=0.07,0.2 mlp=false,true"`. */
export function parseGrid(spec: string): GridAxis[] {
  const axes = spec.trim().split(/\s+/).filter(Boolean).map((part) => {
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
    throw new Error(`${where}: cannot read (${(e as Error).message})`);
  }
  let v: unknown;
  try {
    v = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${where}: expected an object of key: [values]`);
  const axes = Object.entries(v as Record<string, unknown>).map(([k, vals]) => {
    const list = Array.isArray(vals) ? vals : [vals];
    if (!list.every((x) => ['string', 'number', 'boolean'].includes(typeof x))) throw new Error(`${where}: '${k}' must be a list of numbers, strings or booleans`);
    return axis(k, list.map(String), where);
  });
  return checkAxes(axes, where);
}

/** Every combination of the axes, the first axis varying slowest. */
export function gridCells(axes: GridAxis[]): GridCell[] {
  let cells: Record<string, string>[] = [{}];
  for (const a of axes) cells = cells.flatMap((c) => a.values.map((v) => ({ ...c, [a.key]: v })));
  return cells.map((values) => ({ name: Object.entries(values).map(([k, v]) => `${k}=${v.replace(/[^A-Za-z0-9.+-]/g, '_')}`).join('_'), values }));
}

/** The config overrides of one cell. */
export function cellOverrides(cell: GridCell): ConfigOverrides {
  return Object.assign({}, ...Object.entries(cell.values).map(([k, v]) => KEYS[k]!(k, v))) as ConfigOverrides;
}
