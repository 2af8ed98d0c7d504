// moco-ts public API.
export * as torch from './torch/index.js';

// Evaluation and use of a learned representation: load an encoder from any checkpoint, kNN and
// linear-classification accuracy, embeddings of image files, exact cosine search over embedding files.
export {
  loadEncoder,
  resolveCheckpoint,
  describeEncoder,
  Encoder,
  type EncoderInfo,
  type FeatureKind,
  type LoadEncoderOpts,
  type EvalPreprocess,
  snapshotBackbone,
  checkBackboneUnchanged,
} from './eval/encoder.js';
export { knnEvaluate, type KnnEvaluateOpts, type KnnEvaluation } from './eval/knn-evaluate.js';
export { knnClassify, knnScores, type KnnOpts, type KnnResult } from './eval/knn.js';
export { extractFeatures, type ExtractOpts, type Features } from './eval/features.js';
export {
  lincls,
  linclsDefaults,
  type LinclsDefaults,
  type LinclsOpts,
  type LinclsResult,
  type LinclsProtocol,
} from './eval/lincls.js';
export {
  trainLinearOnFeatures,
  LinearHead,
  DivergedError,
  divergenceLimit,
  type LrOrigin,
  type LinearSchedule,
  type LinearFeatureOpts,
  type LinearFeatureResult,
  type EpochMetrics,
  type Accuracy,
} from './eval/linear-probe.js';
export { embedImages, type EmbedOpts, type Embedded } from './eval/embed.js';
export { EmbeddingWriter, EmbeddingIndex, type EmbeddingMeta, type EmbeddingFormat } from './eval/embedding-file.js';
export { searchIndex, type SearchOpts, type Neighbour } from './eval/search.js';
export { writeSearchHtml, type SearchHtmlOpts } from './views/search-html.js';

// Watching runs: TensorBoard event files, run.json, the HTML report of one run or several.
export { EventWriter, histogramOf, type Histogram, type EventWriterOpts } from './io/tfevents.js';
export { readRunInfo, eventFiles, type RunInfo, type RunOutcome } from './train/run-log.js';
export { writeReport, renderReport, type ReportOpts } from './views/report.js';
// What the CLI adds to a pre-training run: report.html however it ends, and the kNN monitor's neighbour grids.
export { ReportObserver } from './views/report-observer.js';
// The same for any run: report.html and neighbour grids (RUN_VIEWS: the module a sweep's cells load for them).
export { runObservers, neighbourGrid, RUN_VIEWS } from './views/run-views.js';
export { renderNeighbourGrid, type NeighbourGridOpts } from './views/neighbour-grid.js';
export { loadReportRun, type ReportRun, type ReportSummary } from './views/report-data.js';

// Layers, models, optimisation, MoCo and its training loop.
export * as nn from './nn/index.js';
// models also holds inferResNet (a ResNet's architecture from its weights) and the ResNet → ONNX exporter.
export * as models from './models/index.js';
export * as optim from './optim/index.js';
export {
  MoCo,
  recipe,
  RECIPES,
  LINCLS_LR,
  LINCLS_V3,
  type MoCoOpts,
  type MoCoOutput,
  type Recipe,
  type RecipeName,
} from './moco/index.js';
// The mechanisms beside MoCo: end-to-end, memory bank and MoCo v3, one interface for the loop.
export {
  EndToEnd,
  MemoryBank,
  MoCoV3,
  createMechanism,
  MECHANISMS,
  type Mechanism,
  type MechanismName,
  type AnyMechanismName,
  type MechanismOutput,
  type MechanismOpts,
  type MoCoV3Opts,
  type MoCoV3Output,
  type MoCoV3DistHooks,
  type EndToEndOpts,
  type EndToEndLoss,
  type MemoryBankOpts,
  type BankSampling,
  type StepBatch,
  type StepRandomness,
  type StepRng,
} from './moco/index.js';
export {
  pretrain,
  resolveConfig,
  readCheckpoint,
  knnMonitor,
  type PretrainConfig,
  type ConfigOverrides,
  type PretrainSummary,
  type PretrainOptions,
} from './train/index.js';
// The one training loop, pre-training's observers (a new one is one file implementing TrainObserver) and the sweep.
export {
  Loop,
  type LoopContext,
  type LoopObserver,
  type LoopStep,
  type LoopRunOptions,
  type LoopResult,
  type LoopState,
  type StepAt,
} from './loop/index.js';
export {
  trainStep,
  type TrainObserver,
  type PretrainContext,
  type StepEvent,
  type EpochEvent,
  type RunEnd,
  type NeighbourGridRenderer,
} from './train/index.js';
export {
  sweep,
  parseGrid,
  readGridFile,
  gridCells,
  type SweepOptions,
  type SweepResult,
  type SweepRow,
  type GridAxis,
  type GridCell,
} from './train/index.js';
export * as data from './data/index.js';
export { saveSafetensors, loadSafetensors } from './io/safetensors.js';
export * as dist from './dist/index.js';
