import type { Command } from 'commander';
import { openDataset } from '../../data/index.js';
import { describeEncoder, lincls, loadEncoder } from '../../eval/index.js';
import { LINCLS_LR, LINCLS_V3 } from '../../moco/index.js';
import { applyThreads } from './eval-common.js';
import { int, num } from './flag-numbers.js';
import { DOWNLOAD_HELP, downloadData } from './download.js';

interface LinclsCliOpts {
  pretrained: string;
  epochs?: string;
  lr?: string;
  batchSize?: string;
  wd?: string;
  momentum?: string;
  schedule?: string;
  cos?: boolean;
  seed?: string;
  threads?: string;
  out?: string;
  maxSteps?: string;
  trainSubset?: string;
  cacheFeatures: boolean;
  evaluate: boolean;
  download?: boolean;
  resume?: string;
}

export function register(program: Command): void {
  program
    .command('lincls')
    .description('linear classification of a frozen pre-trained encoder (main_lincls.py protocol)')
    .argument(
      '<data>',
      'labelled data with train and val/test splits (folder in main_moco layout, cifar10:DIR, synthetic[:N])',
    )
    .requiredOption(
      '--pretrained <ckpt>',
      'checkpoint: our run dir or .safetensors, official MoCo .pth.tar, torchvision .pth',
    )
    .option('--epochs <n>', `epochs (default 100; MoCo v3 encoders ${LINCLS_V3.epochs})`)
    .option(
      '--lr <lr>',
      `base learning rate (default: ${LINCLS_LR.cifar} for encoders of the cifar preset or with a CIFAR stem; ` +
        `${LINCLS_LR.mocov2}, main_lincls.py's, for ImageNet encoders (mocov1/mocov2 presets, torchvision stem); ` +
        `MoCo v3 encoders ${LINCLS_V3.lrResNet} (ViT ${LINCLS_V3.lrViT}) × batch / 256, as its main_lincls.py); a run whose loss explodes stops naming it`,
    )
    .option('--batch-size <n>', 'batch size (default 256)')
    .option('--wd <wd>', 'weight decay (default 0)')
    .option('--momentum <m>', 'SGD momentum (default 0.9)')
    .option('--schedule <epochs>', 'epochs of the ×0.1 lr drops, comma-separated (default 60,80)')
    .option('--cos', 'cosine lr schedule instead of steps (default for MoCo v3 encoders)')
    .option('--seed <n>', 'seed of the fc init, sample order and augmentation (default 0)')
    .option('--threads <n>', 'libtorch threads')
    .option(
      '--out <dir>',
      'write checkpoint.safetensors (last; every epoch with the image protocol) and model_best.safetensors here',
    )
    .option(
      '--resume <ckpt>',
      "continue an image-protocol run from its checkpoint.safetensors (or its --out folder); with --evaluate, evaluate that run's classifier",
    )
    .option('--max-steps <n>', 'stop after this many SGD steps (smoke tests)')
    .option('--train-subset <n>', 'train on a seeded random subset of n training images')
    .option(
      '--cache-features',
      'protocol "cached features": extract un-augmented backbone features once and train the fc on them ' +
        "(many times faster; no train augmentation, so usually a little below the image protocol). Without it: main_lincls.py's " +
        'image protocol, fresh RandomResizedCrop+flip (32-px: pad-4 crop+flip) every epoch',
      false,
    )
    .option(
      '--evaluate',
      'validation only, with the classifier of --pretrained (model_best.safetensors or checkpoint.safetensors written by `moco lincls --out`) ' +
        'or of --resume DIR; a pre-training checkpoint is refused',
      false,
    )
    .option('--download', DOWNLOAD_HELP)
    .action(async (data: string, o: LinclsCliOpts) => {
      applyThreads(o.threads);
      if (o.download) await downloadData(data, 'lincls');
      const encoder = loadEncoder(o.pretrained);
      try {
        console.error(`moco lincls: ${describeEncoder(encoder)}`);
        const train = openDataset(data, { split: 'train' });
        const val = openDataset(data, { split: 'test' });
        const schedule = o.schedule
          ?.split(',')
          .filter(Boolean)
          .map((s) => int('--schedule', s.trim(), 0)!);
        const r = await lincls(encoder, train, val, {
          epochs: int('--epochs', o.epochs),
          lr: num('--lr', o.lr),
          lrFrom: '--lr',
          batchSize: int('--batch-size', o.batchSize),
          weightDecay: num('--wd', o.wd),
          momentum: num('--momentum', o.momentum),
          schedule,
          cos: o.cos,
          seed: int('--seed', o.seed, 0),
          outDir: o.out,
          maxSteps: int('--max-steps', o.maxSteps),
          trainSubset: int('--train-subset', o.trainSubset),
          cacheFeatures: o.cacheFeatures,
          evaluate: o.evaluate,
          resume: o.resume,
          onLog: (l) => console.error(`moco lincls: ${l}`),
        });
        const { history: _h, ...summary } = r;
        console.log(JSON.stringify({ command: 'lincls', pretrained: encoder.info.file, ...summary }));
      } finally {
        encoder.dispose();
      }
    });
}
