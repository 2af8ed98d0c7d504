export * from './backbone-check-observer.js';
export * from './epoch-log-observer.js';
export * from './lincls-events-observer.js';
export * from './classifier-checkpoint-observer.js';
export * from './finetune-checkpoint-observer.js';
