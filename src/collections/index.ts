// Collections of real images in LanceDB: incremental indexing, ANN search with structured filters,
// near-duplicates, spherical k-means and diverse selection.
export * from './lancedb.js';
export * from './filter.js';
export * from './table.js';
export * from './index-images.js';
export * from './dedup.js';
export * from './kmeans.js';
export * from './coreset.js';
export * from './whiten.js';
export * from './phash.js';
