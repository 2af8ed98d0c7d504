export * from './config.js';
export * from './process-group.js';
export * from './data-parallel.js';
export * from './launch.js';
export * from './device.js';
