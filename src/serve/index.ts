// The HTTP service: app factory, model, batching, search backends, preprocessing.
export { buildServer, type ServeOptions, type ServeState, type ServePhase } from './server.js';
export { WEB_ROOT, ortWebDist } from './page.js';
export {
  ServeModel,
  stemPreprocessing,
  type ServeEngine,
  type ServeFeature,
  type ServeModelInfo,
  type ServeModelOptions,
} from './model.js';
export { Batcher, type BatcherOptions, type BatcherStats } from './batcher.js';
export {
  ExactIndexBackend,
  openSearchBackend,
  type SearchBackend,
  type SearchFilter,
  type SearchHit,
} from './search-backend.js';
export { preprocessImage, sourceBox, type Preprocessing, type DecodeLimits } from './preprocess.js';
export { HttpError, unavailable } from './errors.js';
