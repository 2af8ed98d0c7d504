// The smallest MoCo v2 pre-training the train and views tests run: one definition, each test names what it varies.
import type { ConfigOverrides } from '../../src/train/index.js';

/**
 * A width-8 CIFAR-stem ResNet on 32 images a batch: K 256, SplitBN 4, 2 epochs, no step lines, 2 threads, seed 3,
 * with `over` on top.
 */
export function tinyRun(over: ConfigOverrides = {}): ConfigOverrides {
  return {
    preset: 'cifar',
    width: 8,
    batchSize: 32,
    K: 256,
    bnSplits: 4,
    epochs: 2,
    printFreq: 1000,
    threads: 2,
    seed: 3,
    ...over,
  };
}
