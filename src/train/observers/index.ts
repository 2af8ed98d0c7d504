export * from './run-log-observer.js';
export * from './progress-observer.js';
export * from './checkpoint-observer.js';
export * from './knn-observer.js';
export * from './signal-observer.js';
export * from './online-probe-observer.js';
