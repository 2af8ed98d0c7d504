export * from './sgd.js';
export * from './schedule.js';
