import type { Command } from 'commander';
import { renderAugmentPreview } from '../../data/preview.js';
import { PRESET_NAMES, isPresetName } from '../../data/augment.js';

export function register(program: Command): void {
  program
    .command('augment-preview')
    .description('render a PNG grid: original image, then query and key views, one row an image')
    .argument(
      '<data>',
      'a folder (ImageFolder, main_moco layout or plain images), cifar10:DIR, cifar100:DIR or synthetic[:N]',
    )
    .option('--preset <name>', `augmentation preset: ${PRESET_NAMES.join(', ')}`, 'mocov2')
    .option('--out <file>', 'output PNG', 'augment-preview.png')
    .option('-n, --images <n>', 'rows (images)', '8')
    .option('--views <n>', 'augmented views an image', '2')
    .option('--size <px>', "view size (default: the preset's)")
    .option('--seed <n>', 'seed of the image choice and augmentations', '0')
    .option('--split <split>', 'train or test', 'train')
    .action(
      async (
        data: string,
        o: { preset: string; out: string; images: string; views: string; size?: string; seed: string; split: string },
      ) => {
        if (!isPresetName(o.preset)) throw new Error(`unknown preset '${o.preset}'; valid: ${PRESET_NAMES.join(', ')}`);
        if (o.split !== 'train' && o.split !== 'test') throw new Error(`--split must be train or test, got ${o.split}`);
        const r = await renderAugmentPreview(data, {
          preset: o.preset,
          out: o.out,
          images: Number(o.images),
          views: Number(o.views),
          size: o.size === undefined ? undefined : Number(o.size),
          seed: Number(o.seed),
          split: o.split,
        });
        console.log(JSON.stringify(r));
      },
    );
}
