// Feature extraction: one pass of an encoder over a dataset, without augmentation.
import { F, Tensor, cat, keep, noGrad, tidy } from '../torch/index.js';
import type { Module } from '../nn/index.js';
import { Loader, type ImageDataset, type PresetName, type PresetOpts } from '../data/index.js';

export interface ExtractOpts {
  /** Images per forward; default 256. */
  batchSize?: number;
  /** L2-normalise each feature (default true). */
  normalize?: boolean;
  /** Deterministic preprocessing: 'eval' (Resize+CenterCrop, ImageNet mean/std; default) or 'cifar-eval' (as is, CIFAR mean/std). */
  augment?: PresetName;
  /** The preset's options (output size, mean/std). */
  augmentOpts?: PresetOpts;
  /** Called after each batch with (done, total) images. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Worker threads that decode image files while the encoder runs (a forward pass blocks this thread, and
   * with it the event loop that drives in-thread decoding); default 2. Unused for data held in memory.
   */
  workers?: number;
}

export interface Features {
  /** N × D float32. */
  features: Tensor;
  /** N int64 labels, or null for unlabelled data. */
  labels: Tensor | null;
}

/** Runs `encode` (in eval mode, no grad) over every image of `dataset` in order. */
export async function extractFeatures(
  encode: (x: Tensor) => Tensor,
  dataset: ImageDataset,
  o: ExtractOpts = {},
): Promise<Features> {
  const loader = new Loader(dataset, {
    batchSize: o.batchSize ?? 256,
    shuffle: false,
    dropLast: false,
    augment: o.augment ?? 'eval',
    augmentOpts: o.augmentOpts,
    twoCrops: false,
    fileWorkers: o.workers ?? 2,
  });
  const feats: Tensor[] = [];
  const labels: Tensor[] = [];
  let done = 0;
  try {
    for await (const b of loader.epoch(0)) {
      feats.push(
        keep(
          noGrad(() =>
            tidy(() => {
              const f = encode(b.views[0]!);
              return (o.normalize ?? true) ? F.normalize(f, { dim: 1 }) : f.contiguous();
            }),
          ),
        ),
      );
      if (b.labels) labels.push(keep(b.labels.clone()));
      done += b.indices.length;
      o.onProgress?.(done, loader.dataset.length);
      b.dispose();
    }
    const features = cat(feats, 0);
    const lab = labels.length ? cat(labels, 0) : null;
    return { features, labels: lab };
  } finally {
    for (const t of [...feats, ...labels]) t.dispose();
    await loader.close();
  }
}

/** Puts a module in eval mode for the duration of `fn`, restoring its mode after. */
export async function inEvalMode<T>(m: Module, fn: () => Promise<T>): Promise<T> {
  const was = m.training;
  m.eval();
  try {
    return await fn();
  } finally {
    m.train(was);
  }
}
