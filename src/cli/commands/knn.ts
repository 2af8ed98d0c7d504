import type { Command } from 'commander';
import { openDataset } from '../../data/index.js';
import { describeEncoder, knnEvaluate, loadEncoder } from '../../eval/index.js';
import { applyThreads, feature, progress } from './eval-common.js';
import { int, num } from './flag-numbers.js';
import { DOWNLOAD_HELP, downloadData } from './download.js';

interface KnnCliOpts {
  pretrained: string;
  k: string;
  t: string;
  feature: string;
  batchSize: string;
  threads?: string;
  download?: boolean;
}

export function register(program: Command): void {
  program
    .command('knn')
    .description(
      'weighted kNN accuracy of a pre-trained encoder (train split = bank, test/val split = queries), as JSON',
    )
    .argument(
      '<data>',
      'labelled data with train and val/test splits (folder in main_moco layout, cifar10:DIR, synthetic[:N])',
    )
    .requiredOption(
      '--pretrained <ckpt>',
      'checkpoint: our run dir or .safetensors, official MoCo .pth.tar, torchvision .pth',
    )
    .option('--k <n>', 'neighbours', '200')
    .option('--t <t>', 'temperature of the vote weights exp(sim/t)', '0.1')
    .option(
      '--feature <which>',
      'backbone (pooled features) or head (projection output, as the colab monitor)',
      'backbone',
    )
    .option('--batch-size <n>', 'images per forward', '256')
    .option('--threads <n>', 'libtorch threads')
    .option('--download', DOWNLOAD_HELP)
    .action(async (data: string, o: KnnCliOpts) => {
      applyThreads(o.threads);
      if (o.download) await downloadData(data, 'knn');
      const feat = feature(o.feature);
      const encoder = loadEncoder(o.pretrained);
      try {
        console.error(`moco knn: ${describeEncoder(encoder)}`);
        const bars = { bank: progress('moco knn: bank features'), queries: progress('moco knn: query features') };
        const r = await knnEvaluate(
          encoder,
          openDataset(data, { split: 'train' }),
          openDataset(data, { split: 'test' }),
          {
            k: int('--k', o.k),
            t: num('--t', o.t),
            feature: feat,
            batchSize: int('--batch-size', o.batchSize),
            onProgress: (phase, d, n) => bars[phase](d, n),
          },
        );
        const { predictions: _p, ...rest } = r;
        console.log(
          JSON.stringify({
            command: 'knn',
            pretrained: encoder.info.file,
            ...rest,
            perClass: rest.perClass.map((v) => (Number.isNaN(v) ? null : v)),
          }),
        );
      } finally {
        encoder.dispose();
      }
    });
}
