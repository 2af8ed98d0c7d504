export * from './dataset.js';
export * from './folder.js';
export * from './cifar.js';
export * from './cifar-download.js';
export * from './synthetic.js';
export * from './split.js';
export * from './open.js';
