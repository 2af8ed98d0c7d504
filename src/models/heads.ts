// Projection heads, named as in the official MoCo code: v1 keeps the ResNet's `fc` (Linear(d, dim));
// v2's `--mlp` makes fc = Sequential(Linear(d, d), ReLU(), Linear(d, dim)) → keys fc.0.*, fc.2.*;
// v3's projector and predictor are builder.py's _build_mlp (see mlpHead).
import { BatchNorm1d, Linear, Module, ReLU, Sequential } from '../nn/index.js';

export type HeadKind = 'fc' | 'mlp';

export function projectionHead(kind: HeadKind, inFeatures: number, dim: number): Module {
  if (kind === 'fc') return new Linear(inFeatures, dim);
  return new Sequential(new Linear(inFeatures, inFeatures), new ReLU(), new Linear(inFeatures, dim));
}

/**
 * MoCo v3's MLP (builder.py's _build_mlp): `numLayers` Linear(bias=False) layers, inDim → mlpDim → … → outDim;
 * each hidden layer is followed by BatchNorm1d and ReLU, the last by BatchNorm1d(affine=False) when `lastBn`
 * (SimCLR's design, without γ). Children are numbered as nn.Sequential's, so a 2-layer head with the last BN
 * has keys 0.weight, 1.{weight,bias,running_*}, 3.weight, 4.running_* — the official checkpoint's.
 * ResNet: projector mlpHead(2, 2048, 4096, 256, true), predictor mlpHead(2, 256, 4096, 256, false).
 */
export function mlpHead(numLayers: number, inDim: number, mlpDim: number, outDim: number, lastBn = true): Sequential {
  if (!Number.isInteger(numLayers) || numLayers < 1)
    throw new RangeError(`mlpHead: numLayers must be a positive integer, got ${numLayers}`);
  const layers: Module[] = [];
  for (let l = 0; l < numLayers; l++) {
    const dim1 = l === 0 ? inDim : mlpDim;
    const dim2 = l === numLayers - 1 ? outDim : mlpDim;
    layers.push(new Linear(dim1, dim2, false));
    if (l < numLayers - 1) layers.push(new BatchNorm1d(dim2), new ReLU(true));
    else if (lastBn) layers.push(new BatchNorm1d(dim2, { affine: false }));
  }
  return new Sequential(...layers);
}
