export * from './config.js';
export * from './checkpoint.js';
export * from './metrics.js';
export * from './pretrain.js';
export * from './run-log.js';
