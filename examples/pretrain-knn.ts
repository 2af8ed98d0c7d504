// Pre-trains MoCo for one epoch on generated images and measures the encoder with a kNN classifier.
// Usage: node dist/examples/pretrain-knn.js [RUN_DIR]   (default: a new folder under the system's temp folder)
// Prints one JSON line: the run directory, its checkpoint, the steps trained and the kNN top-1 (%).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { data, knnEvaluate, loadEncoder, pretrain, resolveConfig } from 'moco-ts';

const out = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'moco-example-run-'));

// `synthetic:256` is 256 generated 32-px training images (and 51 test images from another seed). The preset gives
// every setting; the overrides are the command line's flags in camelCase (`--batch-size` → batchSize).
const config = resolveConfig('synthetic:256', {
  preset: 'cifar',
  width: 8,
  batchSize: 32,
  K: 256,
  bnSplits: 4,
  epochs: 1,
  threads: 2,
  seed: 0,
  out,
});
const run = await pretrain(config, { quiet: true });

// loadEncoder is synchronous: it reads the run's latest checkpoint and returns the frozen query encoder.
const encoder = loadEncoder(run.runDir);
try {
  const bank = data.openDataset('synthetic:256');
  const queries = data.openDataset('synthetic:256', { split: 'test' });
  const knn = await knnEvaluate(encoder, bank, queries, { k: 20, t: 0.1 });
  console.log(
    JSON.stringify({
      runDir: run.runDir,
      checkpoint: run.checkpoint,
      steps: run.steps,
      lastLoss: run.lastLoss,
      knnTop1: knn.top1,
      queries: knn.queries,
    }),
  );
} finally {
  encoder.dispose();
}
