import type { Command } from 'commander';
import { dispose } from '../../torch/index.js';
import { describeImport } from '../../io/pretrained.js';
import { loadCheckpointWeights } from '../../eval/encoder.js';
import { saveSafetensors } from '../../io/safetensors.js';
import { saveTorch } from '../../io/torch-save.js';
import { exportResNetOnnx } from '../../io/onnx-export.js';

interface ExportOpts { format: string; out: string; head: boolean; opset: string; dynamicBatch: boolean; batch: string; normalize: boolean }

export function register(program: Command): void {
  program
    .command('export')
    .description('export the query encoder of a checkpoint (ours, official MoCo, torchvision) for other frameworks')
    .argument('<ckpt>', 'a checkpoint (.safetensors, .pth, .pth.tar) or a run directory (its latest checkpoint)')
    .requiredOption('--out <path>', 'output file')
    .option('--format <fmt>', 'torchvision (.pth state dict for torch.load / Detectron2), safetensors, or onnx', 'torchvision')
    .option('--head', 'include the projection head (fc or MLP); for onnx also the L2 normalisation', false)
    .option('--opset <n>', 'ONNX opset', '17')
    .option('--dynamic-batch', 'ONNX: symbolic batch dimension (default)', true)
    .option('--no-dynamic-batch', 'ONNX: fixed batch of --batch')
    .option('--batch <n>', 'ONNX: batch size when not dynamic', '1')
    .option('--no-normalize', 'ONNX: no L2 normalisation of the output')
    .action((ckpt: string, o: ExportOpts) => {
      const { weights: w } = loadCheckpointWeights(ckpt);
      try {
        console.error(describeImport(w));
        const sd = new Map(w.backbone);
        if (o.head || o.format === 'onnx') for (const [k, t] of w.head) sd.set(k, t);
        switch (o.format) {
          case 'torchvision':
            saveTorch(o.out, sd);
            break;
          case 'safetensors': {
            const meta: Record<string, string> = { source: ckpt, layout: w.layout, head: o.head ? w.headKind : 'none' };
            for (const [k, v] of Object.entries(w.meta)) meta[k] = String(v);
            saveSafetensors(o.out, sd, meta);
            break;
          }
          case 'onnx': {
            const bytes = exportResNetOnnx(o.out, sd, {
              head: o.head, normalize: o.normalize, opset: Number(o.opset), dynamicBatch: o.dynamicBatch, batchSize: Number(o.batch),
              metadata: { source: ckpt },
            });
            console.error(`ONNX opset ${o.opset}, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
            break;
          }
          default:
            throw new Error(`unknown --format '${o.format}' (torchvision, safetensors, onnx)`);
        }
        console.error(`wrote ${o.out}`);
      } finally {
        dispose([...w.backbone.values(), ...w.head.values()]);
      }
    });
}
