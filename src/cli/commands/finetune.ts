import type { Command } from 'commander';
import { openDataset } from '../../data/index.js';
import { describeEncoder, finetune, loadEncoder } from '../../eval/index.js';
import { applyThreads } from './eval-common.js';
import { int, num } from './flag-numbers.js';

interface FinetuneCliOpts {
  pretrained: string;
  labelFraction: string;
  randomInit: boolean;
  epochs?: string;
  lr?: string;
  batchSize?: string;
  wd?: string;
  seed?: string;
  threads?: string;
  out?: string;
  resume?: string;
  maxSteps?: string;
}

export function register(program: Command): void {
  program
    .command('finetune')
    .description(
      'semi-supervised fine-tuning: the whole pre-trained network and a new linear classifier trained on a class-balanced fraction of the labels (SimCLR / MoCo protocol)',
    )
    .argument(
      '<data>',
      'labelled data with train and val/test splits (folder in main_moco layout, cifar10:DIR, synthetic[:N])',
    )
    .requiredOption(
      '--pretrained <ckpt>',
      'checkpoint: our run dir or .safetensors, official MoCo .pth.tar, torchvision .pth (ResNet or ViT)',
    )
    .requiredOption(
      '--label-fraction <f>',
      "fraction of each class's training labels to train on, in (0, 1]: the papers' semi-supervised protocol uses 0.01 and 0.1; " +
        'round(f × class count), at least 1 a class, chosen by --seed (the list goes to --out/label-subset.tsv)',
    )
    .option(
      '--random-init',
      "start from random weights of --pretrained's architecture instead of its weights (the baseline to compare with)",
      false,
    )
    .option(
      '--epochs <n>',
      'epochs (default 60 below a 0.1 fraction, else 30: SimCLR fine-tunes 1% for 60, 10% for 30)',
    )
    .option('--lr <lr>', 'base learning rate, cosine-decayed once an epoch (default 0.05 × batch size / 256, SimCLR)')
    .option('--batch-size <n>', 'batch size (default 256)')
    .option('--wd <wd>', 'weight decay (default 0, as SimCLR)')
    .option(
      '--seed <n>',
      'seed of the label subset, classifier init, random init, sample order and augmentation (default 0)',
    )
    .option('--threads <n>', 'libtorch threads')
    .option(
      '--out <dir>',
      'write label-subset.tsv, checkpoint.safetensors (every epoch, resumable), model_best.safetensors, TensorBoard events and finetune.json here',
    )
    .option('--resume <ckpt>', 'continue a run from its checkpoint.safetensors (or its --out folder)')
    .option('--max-steps <n>', 'stop after this many SGD steps (smoke tests)')
    .action(async (data: string, o: FinetuneCliOpts) => {
      applyThreads(o.threads);
      const fraction = Number(o.labelFraction);
      if (!(fraction > 0 && fraction <= 1))
        throw new Error(
          `--label-fraction: expected a number in (0, 1] (the papers use 0.01 and 0.1), got '${o.labelFraction}'`,
        );
      const encoder = loadEncoder(o.pretrained);
      try {
        console.error(`moco finetune: ${describeEncoder(encoder)}`);
        const train = openDataset(data, { split: 'train' });
        const val = openDataset(data, { split: 'test' });
        const r = await finetune(encoder, train, val, {
          labelFraction: fraction,
          randomInit: o.randomInit,
          epochs: int('--epochs', o.epochs),
          lr: num('--lr', o.lr),
          batchSize: int('--batch-size', o.batchSize),
          weightDecay: num('--wd', o.wd),
          seed: int('--seed', o.seed, 0),
          outDir: o.out,
          resume: o.resume,
          maxSteps: int('--max-steps', o.maxSteps),
          onLog: (l) => console.error(`moco finetune: ${l}`),
        });
        const { history: _h, ...summary } = r;
        console.log(JSON.stringify({ command: 'finetune', pretrained: encoder.info.file, ...summary }));
      } finally {
        encoder.dispose();
      }
    });
}
