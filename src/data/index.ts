// Data pipeline: datasets, decoding, batched augmentation, loader.
export * from './rng.js';
export * from './decode.js';
export * from './decoded-images.js';
export * from './augment-ops.js';
export * from './augment-params.js';
export * from './augment.js';
export * from './loader.js';
export * from './datasets/index.js';
export * from './augment-pool.js';
export * from './preview.js';
export * from './walk.js';
