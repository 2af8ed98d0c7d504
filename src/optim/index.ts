export * from './optimizer.js';
export * from './sgd.js';
export * from './lars.js';
export * from './adamw.js';
export * from './schedule.js';
export * from './create.js';
