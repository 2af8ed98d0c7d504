import type { Command } from 'commander';
import { extname } from 'node:path';
import { dispose } from '../../torch/index.js';
import { describeImport, exportMetadata, exportTensors } from '../../io/pretrained.js';
import { loadCheckpointWeights } from '../../eval/encoder.js';
import { saveSafetensors } from '../../io/safetensors.js';
import { saveTorch } from '../../io/torch-save.js';

export function register(program: Command): void {
  program
    .command('convert')
    .description(
      'convert pre-trained ResNet weights (official MoCo .pth.tar, torchvision .pth, DataParallel) to torchvision names',
    )
    .argument('<in>', 'a .pth / .pth.tar / .safetensors file, or a run directory (its latest checkpoint)')
    .argument('<out>', 'the output: .safetensors, or .pth for a torchvision state dict')
    .option('--head', 'keep the projection head (fc or MLP) as fc.*', false)
    .action((input: string, out: string, o: { head: boolean }) => {
      const { weights: w } = loadCheckpointWeights(input);
      try {
        console.error(describeImport(w));
        const tensors = exportTensors(w, o.head);
        if (extname(out) === '.pth' || extname(out) === '.pt') saveTorch(out, tensors);
        else saveSafetensors(out, tensors, exportMetadata(w, input, o.head));
        console.error(`wrote ${tensors.size} tensors to ${out}`);
      } finally {
        dispose([...w.backbone.values(), ...w.head.values()]);
      }
    });
}
