// A ResNet's architecture read back from its weights: torchvision names (layer1.0.conv3 only in bottleneck
// blocks) and shapes (a 3×3 conv1 is the CIFAR stem). Used where a state dict carries no metadata.
import type { Tensor } from '../torch/index.js';

/** The architecture of a torchvision-layout ResNet as its state dict shows it. */
export interface ResNetShape {
  block: 'basic' | 'bottleneck';
  /** Blocks per stage (layer1…layer4). */
  layers: number[];
  /** 3×3 stride-1 stem without max-pool (true) or 7×7 stride-2 stem with max-pool. */
  cifarStem: boolean;
  /** Channels out of the backbone (512 for resnet18/34, 2048 for resnet50/101 at width 1). */
  featureDim: number;
  /** The projection head present: none, one Linear (`fc.*`), or Linear–ReLU–Linear (`fc.0.*`, `fc.2.*`). */
  head: 'none' | 'fc' | 'mlp';
}

function get(sd: Map<string, Tensor>, k: string): Tensor {
  const t = sd.get(k);
  if (!t) throw new Error(`ResNet weights lack '${k}' (torchvision names expected)`);
  return t;
}

/**
 * Reads the ResNet configuration from torchvision names and weight shapes of a state dict (backbone names,
 * optionally with `fc.*`). Throws when a tensor it needs is missing or a stage has no blocks.
 */
export function inferResNet(sd: Map<string, Tensor>): ResNetShape {
  const conv1 = get(sd, 'conv1.weight');
  const block = sd.has('layer1.0.conv3.weight') ? 'bottleneck' : 'basic';
  const layers: number[] = [];
  for (let l = 1; l <= 4; l++) {
    let n = 0;
    while (sd.has(`layer${l}.${n}.conv1.weight`)) n++;
    if (!n) throw new Error(`ResNet weights: no blocks in layer${l}`);
    layers.push(n);
  }
  const last = get(sd, `layer4.${layers[3]! - 1}.${block === 'basic' ? 'conv2' : 'conv3'}.weight`);
  const head = sd.has('fc.0.weight') ? 'mlp' : sd.has('fc.weight') ? 'fc' : 'none';
  return { block, layers, cifarStem: conv1.shape[2] === 3, featureDim: last.shape[0]!, head };
}
