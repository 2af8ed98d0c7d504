export * from './resnet.js';
export * from './heads.js';
export * from './registry.js';
