// Projection heads, named as in the official MoCo code: v1 keeps the ResNet's `fc` (Linear(d, dim));
// v2's `--mlp` makes fc = Sequential(Linear(d, d), ReLU(), Linear(d, dim)) → keys fc.0.*, fc.2.*.
import { Linear, Module, ReLU, Sequential } from '../nn/index.js';

export type HeadKind = 'fc' | 'mlp';

export function projectionHead(kind: HeadKind, inFeatures: number, dim: number): Module {
  if (kind === 'fc') return new Linear(inFeatures, dim);
  return new Sequential(new Linear(inFeatures, inFeatures), new ReLU(), new Linear(inFeatures, dim));
}
