export * from './moco.js';
export * from './presets.js';
