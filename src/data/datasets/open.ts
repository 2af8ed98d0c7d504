// Opens a dataset from a CLI data argument.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Cifar, parseCifarSpec } from './cifar.js';
import type { ImageDataset } from './dataset.js';
import { ImageFolder, UnlabeledFolder, isImageFile } from './folder.js';
import { Synthetic } from './synthetic.js';

export interface OpenOpts {
  /** Which part of the data. Default 'train'. */
  split?: 'train' | 'test';
  /** Seed of generated data (synthetic). Default 0. */
  seed?: number;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Opens a dataset named on the command line:
 * - `synthetic` or `synthetic:N` — {@link Synthetic} (train: N images, default 10,000; test: N/5, other seed);
 * - `cifar10:DIR`, `cifar100:DIR` — the binary release under DIR;
 * - a folder in main_moco.py's layout (`train/` and `val/` or `test/`, each `<class>/<image>`): the split's folder;
 * - a folder of class folders: ImageFolder of it (both splits);
 * - `unlabeled:DIR`, or any folder with images at its top level: every image under it, no labels.
 */
export function openDataset(spec: string, o: OpenOpts = {}): ImageDataset {
  const split = o.split ?? 'train';
  const seed = o.seed ?? 0;
  const m = /^synthetic(?::(\d+))?$/.exec(spec);
  if (m) {
    const n = m[1] ? Number(m[1]) : 10000;
    return split === 'train'
      ? new Synthetic({ n, seed })
      : new Synthetic({ n: Math.max(10, Math.round(n / 5)), seed: seed + 1_000_003 });
  }
  const c = parseCifarSpec(spec);
  if (c) return new Cifar(c.root, { variant: c.variant, train: split === 'train' });
  if (spec.startsWith('unlabeled:')) return new UnlabeledFolder(spec.slice('unlabeled:'.length));
  if (!existsSync(spec))
    throw new Error(`data '${spec}' not found: give a folder, cifar10:DIR, cifar100:DIR or synthetic[:N]`);
  if (!isDir(spec)) throw new Error(`data '${spec}' is not a folder`);
  const sub = split === 'train' ? ['train'] : ['val', 'test'];
  for (const s of sub) if (isDir(join(spec, s))) return new ImageFolder(join(spec, s));
  if (split === 'test' && isDir(join(spec, 'train')))
    throw new Error(`data '${spec}' has train/ but no val/ or test/ folder`);
  const top = readdirSync(spec).filter((e) => !e.startsWith('.'));
  if (top.some((e) => isImageFile(e))) return new UnlabeledFolder(spec);
  return new ImageFolder(spec);
}
