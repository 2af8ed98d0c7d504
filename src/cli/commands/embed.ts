import type { Command } from 'commander';
import { resolve } from 'node:path';
import { writeTextAtomic } from '../../io/atomic.js';
import { addEmbedOptions, embedSettings, progress, type EmbedFlags } from './eval-common.js';

interface EmbedOpts extends EmbedFlags {
  engine: string; out: string; size: string; resize?: string; batch: string; isolate: boolean; cifar: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('embed')
    .description('L2-normalised embeddings of images: libtorch with --pretrained (default), or an exported model with --engine onnx')
    .argument('<inputs...>', 'image files or directories (searched recursively); with --engine onnx the first is the .onnx model')
    .requiredOption('--out <path>', 'output by extension: .npy (float32 [N, D], paths in <name>.paths.txt), .safetensors, or .jsonl ({"path", "embedding"} a line)')
    .option('--engine <engine>', 'libtorch, onnx, or auto (onnx when the first input is an .onnx file)', 'auto')
    .option('--size <px>', 'onnx engine: center crop fed to the model', '224')
    .option('--resize <px>', 'onnx engine: shorter side before the crop (default size·256/224)')
    .option('--cifar', 'onnx engine: CIFAR normalisation and 32-px input (size 32, resize 32)', false)
    .option('--isolate', 'onnx engine: run onnxruntime in a child process', false);
  addEmbedOptions(cmd, { prefix: 'libtorch engine: ', pretrained: 'libtorch engine: checkpoint (our run dir or .safetensors, official MoCo .pth.tar, torchvision .pth)', batch: '32' })
    .action(async (inputs: string[], o: EmbedOpts) => {
      const engine = o.engine === 'auto' ? (inputs[0]?.endsWith('.onnx') ? 'onnx' : 'libtorch') : o.engine;
      if (engine === 'onnx') return embedOnnx(inputs[0]!, inputs.slice(1), o);
      if (engine !== 'libtorch') throw new Error(`--engine must be libtorch, onnx or auto, got '${o.engine}'`);
      if (!o.pretrained) throw new Error('the libtorch engine needs --pretrained <checkpoint> (or give an .onnx model for --engine onnx)');
      const emb = embedSettings(o);
      const feat = emb.feature;
      const { collectImages, describeEncoder, embedImages, EmbeddingWriter, loadEncoder } = await import('../../eval/index.js');
      const files = collectImages(inputs);
      if (!files.length) throw new Error('no image files found');
      const encoder = loadEncoder(o.pretrained);
      try {
        console.error(`moco embed: ${describeEncoder(encoder)}`);
        const pre = encoder.preprocess();
        const writer = new EmbeddingWriter(o.out, {
          pretrained: resolve(encoder.info.file), feature: feat, arch: encoder.info.arch,
          imageSize: encoder.info.imageSize, augment: pre.augment, normalized: true, ...(emb.flip ? { flip: true } : {}), ...(emb.crops ? { crops: emb.crops.kind } : {}),
        });
        try {
          const r = await embedImages(encoder, files, {
            ...emb, writer, onProgress: progress('moco embed'),
            onSkip: (s) => console.error(`moco embed: skipping ${s.path}: ${s.reason}`),
          });
          writer.finish();
          console.error(`moco embed: ${r.paths.length} images (${r.dim}-d) into ${o.out}${r.skipped.length ? `; ${r.skipped.length} skipped` : ''}`);
          console.log(JSON.stringify({ command: 'embed', out: o.out, count: r.paths.length, dim: r.dim, feature: feat, skipped: r.skipped }));
        } catch (e) {
          writer.abort();
          throw e;
        }
      } finally {
        encoder.dispose();
      }
    });
}

async function embedOnnx(model: string, images: string[], o: EmbedOpts): Promise<void> {
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
}
