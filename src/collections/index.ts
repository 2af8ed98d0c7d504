// Collections of real images in LanceDB: incremental indexing, ANN search with structured filters,
// near-duplicates (and moving them aside), spherical k-means and diverse selection.
export * from './lancedb.js';
export * from './filter.js';
export * from './table.js';
export * from './index-images.js';
export * from './dedup.js';
export * from './kmeans.js';
export * from './coreset.js';
export * from './whiten.js';
export * from './phash.js';
export * from './move.js';
export * from './rows.js';
export * from './search.js';
