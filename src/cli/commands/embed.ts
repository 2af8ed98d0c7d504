import type { Command } from 'commander';
import { writeTextAtomic } from '../../io/atomic.js';

interface EmbedOpts { engine: string; out: string; size: string; resize?: string; batch: string; isolate: boolean; cifar: boolean }

export function register(program: Command): void {
  program
    .command('embed')
    .description('embed images with an exported model (--engine onnx: onnxruntime-node, no libtorch work)')
    .argument('<model>', 'an .onnx file from `moco export --format onnx`')
    .argument('<images...>', 'image files or directories (searched recursively)')
    .requiredOption('--out <path>', 'output: .npy (float32 [N, D]) or .jsonl (one {"file", "embedding"} per line)')
    .option('--engine <engine>', 'onnx', 'onnx')
    .option('--size <px>', 'center crop fed to the model', '224')
    .option('--resize <px>', 'shorter side before the crop (default size·256/224)')
    .option('--cifar', 'CIFAR normalisation and 32-px input (size 32, resize 32)', false)
    .option('--batch <n>', 'images per call', '32')
    .option('--isolate', 'run onnxruntime in a child process', false)
    .action(async (model: string, images: string[], o: EmbedOpts) => {
      if (o.engine !== 'onnx') throw new Error(`--engine ${o.engine}: only 'onnx' is available here; embed with libtorch through the knn/lincls tools`);
      // Imported lazily so that other commands never load onnxruntime.
      const { embedFilesOnnx, listImages, toNpy } = await import('../../io/onnx-embed.js');
      const files = listImages(images);
      if (!files.length) throw new Error('no image files found');
      const size = o.cifar ? 32 : Number(o.size);
      const e = await embedFilesOnnx(model, files, {
        size, resize: o.resize ? Number(o.resize) : o.cifar ? 32 : undefined, batchSize: Number(o.batch), isolate: o.isolate,
        ...(o.cifar ? { mean: [0.4914, 0.4822, 0.4465] as const, std: [0.2023, 0.1994, 0.201] as const } : {}),
      });
      if (o.out.endsWith('.jsonl')) {
        const lines = files.map((f, i) => JSON.stringify({ file: f, embedding: Array.from(e.data.subarray(i * e.dim, (i + 1) * e.dim)) }));
        writeTextAtomic(o.out, `${lines.join('\n')}\n`);
      } else {
        writeTextAtomic(o.out, toNpy(e));
      }
      console.error(`embedded ${e.count} images (${e.dim}-d) into ${o.out}`);
    });
}
