export * from './features.js';
export * from './knn.js';
