// Shared fixtures of the collection tests: a folder of real CIFAR-10 test images (copied into a temp dir, in an
// ImageFolder layout) and a small random-init encoder checkpoint.
import { existsSync, mkdirSync, readdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed } from '../../src/torch/index.js';
import { createModel, projectionHead } from '../../src/models/index.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { repoRoot } from '../helpers/pytorch.js';

export const CIFAR_TEST = join(repoRoot(), '..', 'shared', 'datasets', 'cifar10', 'test');
export const CLI = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

/** Copies images `from`…`from+perClass−1` of each of `classes` into dir/<class>/; returns the file count. */
export function cifarFolder(dir: string, classes: string[], perClass: number, from = 0): number {
  if (!existsSync(CIFAR_TEST)) throw new Error(`the collection tests need the shared CIFAR-10 JPEGs at ${CIFAR_TEST}`);
  let n = 0;
  for (const c of classes) {
    mkdirSync(join(dir, c), { recursive: true });
    for (const f of readdirSync(join(CIFAR_TEST, c))
      .sort()
      .slice(from, from + perClass)) {
      copyFileSync(join(CIFAR_TEST, c, f), join(dir, c, f));
      n++;
    }
  }
  return n;
}

/** A random-init ResNet-18 (CIFAR stem, width 8, MLP head) saved as an encoder checkpoint. */
export function randomEncoder(file: string, seed = 4): string {
  manualSeed(seed);
  const m = createModel('resnet18', { cifarStem: true, width: 8 });
  m.replaceModule('fc', projectionHead('mlp', m.featureDim, 16));
  saveSafetensors(file, new Map([...m.stateDict()].map(([k, t]) => [`encoder_q.${k}`, t])));
  m.dispose();
  return file;
}

/** `count` unit vectors around `clusters` random centres (spread `noise`), seeded: a clustered set where recall means something. */
export function clustered(count: number, dim: number, clusters: number, noise: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const rnd = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
  const gauss = (): number => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
  const centres = Float32Array.from({ length: clusters * dim }, gauss);
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const c = Math.floor(rnd() * clusters);
    let norm = 0;
    for (let j = 0; j < dim; j++) {
      const v = centres[c * dim + j]! / Math.sqrt(dim) + (noise * gauss()) / Math.sqrt(dim);
      out[i * dim + j] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < dim; j++) out[i * dim + j]! /= norm;
  }
  return out;
}
