export * from './sgd.js';
export * from './lars.js';
export * from './adamw.js';
export * from './schedule.js';
