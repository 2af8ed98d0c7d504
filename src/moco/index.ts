export * from './mechanism.js';
export * from './encoder.js';
export * from './moco.js';
export * from './end-to-end.js';
export * from './memory-bank.js';
export * from './mocov3.js';
export * from './create.js';
export * from './presets.js';
