export * from './backbone.js';
export * from './resnet.js';
export * from './vit.js';
export * from './heads.js';
export * from './registry.js';
export * from './resnet-shape.js';
export * from './resnet-onnx.js';
export * from './vit-onnx.js';
