import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addEmbedOptions, embedSettings, progress, type EmbedFlags } from './eval-common.js';

interface EmbedOpts extends EmbedFlags {
  engine: string;
  out: string;
  size?: string;
  resize?: string;
  batch: string;
  isolate: boolean;
  cifar: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('embed')
    .description(
      'L2-normalised embeddings of images: libtorch with --pretrained (default), or an exported model with --engine onnx',
    )
    .argument(
      '<inputs...>',
      'image files or directories (searched recursively); with --engine onnx the first is the .onnx model',
    )
    .requiredOption(
      '--out <path>',
      'output by extension: .npy (float32 [N, D], paths in <name>.paths.jsonl, one JSON string a line), .safetensors, or .jsonl ({"path", "embedding"} a line)',
    )
    .option('--engine <engine>', 'libtorch, onnx, or auto (onnx when the first input is an .onnx file)', 'auto')
    .option(
      '--size <px>',
      'onnx engine: side fed to the model (default: the transform the model records, as `moco serve` uses it)',
    )
    .option(
      '--resize <px>',
      "onnx engine: shorter side before the center crop (default: the model's recorded transform)",
    )
    .option(
      '--cifar',
      'onnx engine: CIFAR normalisation and the whole image stretched to 32 px, for a model exported without its transform',
      false,
    )
    .option('--isolate', 'onnx engine: run onnxruntime in a child process', false);
  addEmbedOptions(cmd, {
    prefix: 'libtorch engine: ',
    pretrained: 'libtorch engine: checkpoint (our run dir or .safetensors, official MoCo .pth.tar, torchvision .pth)',
    batch: '32',
  }).action(async (inputs: string[], o: EmbedOpts) => {
    const engine = o.engine === 'auto' ? (inputs[0]?.endsWith('.onnx') ? 'onnx' : 'libtorch') : o.engine;
    if (engine === 'onnx') return embedOnnx(inputs[0]!, inputs.slice(1), o);
    if (engine !== 'libtorch') throw new Error(`--engine must be libtorch, onnx or auto, got '${o.engine}'`);
    if (!o.pretrained)
      throw new Error('the libtorch engine needs --pretrained <checkpoint> (or give an .onnx model for --engine onnx)');
    const emb = embedSettings(o);
    const feat = emb.feature;
    const { describeEncoder, embedImages, EmbeddingWriter, loadEncoder } = await import('../../eval/index.js');
    const { walkImages } = await import('../../data/walk.js');
    const walked = walkImages(inputs, { onSkip: (s) => console.error(`moco embed: skipping ${s.path}: ${s.reason}`) });
    const files = walked.found.map((f) => f.path);
    if (!files.length) throw new Error(`no image files under ${inputs.join(', ')}`);
    const encoder = loadEncoder(o.pretrained);
    try {
      console.error(`moco embed: ${describeEncoder(encoder)}`);
      const pre = encoder.preprocess();
      const writer = new EmbeddingWriter(o.out, {
        pretrained: resolve(encoder.info.file),
        feature: feat,
        arch: encoder.info.arch,
        imageSize: encoder.info.imageSize,
        augment: pre.augment,
        normalized: true,
        roots: walked.roots.map((r) => resolve(r)),
        ...(emb.flip ? { flip: true } : {}),
        ...(emb.crops ? { crops: emb.crops.kind } : {}),
      });
      try {
        const r = await embedImages(encoder, files, {
          ...emb,
          writer,
          onProgress: progress('moco embed'),
          onSkip: (s) => console.error(`moco embed: skipping ${s.path}: ${s.reason}`),
        });
        writer.finish();
        console.error(
          `moco embed: ${r.paths.length} images (${r.dim}-d) into ${o.out}${r.skipped.length + walked.skipped.length ? `; ${r.skipped.length + walked.skipped.length} skipped` : ''}`,
        );
        console.log(
          JSON.stringify({
            command: 'embed',
            engine: 'libtorch',
            out: o.out,
            count: r.paths.length,
            dim: r.dim,
            feature: feat,
            skipped: [...walked.skipped, ...r.skipped],
          }),
        );
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
  const { embedFilesOnnx } = await import('../../eval/onnx-embed.js');
  const { EmbeddingWriter } = await import('../../eval/embedding-file.js');
  const { stemPreprocessing } = await import('../../data/eval-transform.js');
  const { walkImages } = await import('../../data/walk.js');
  const walked = walkImages(images, { onSkip: (s) => console.error(`moco embed: skipping ${s.path}: ${s.reason}`) });
  const files = walked.found.map((f) => f.path);
  if (!files.length) throw new Error(`no image files under ${images.join(', ') || '(no inputs after the model)'}`);
  // The model's recorded transform unless a flag overrides it (for models exported without one).
  const override = {
    ...(o.cifar ? stemPreprocessing(true) : {}),
    ...(o.size !== undefined ? { size: positive('--size', o.size) } : {}),
    ...(o.resize !== undefined ? { resize: positive('--resize', o.resize) } : {}),
  };
  const skipped = [...walked.skipped];
  const e = await embedFilesOnnx(model, files, {
    preprocessing: override,
    batchSize: Number(o.batch),
    isolate: o.isolate,
    onSkip: (s) => {
      skipped.push(s);
      console.error(`moco embed: skipping ${s.path}: ${s.reason}`);
    },
  });
  const pre = e.preprocessing;
  console.error(
    `moco embed: ${model} (onnxruntime), input ${pre.size} px (${pre.resize === null ? 'stretched' : `resize ${pre.resize}, center crop`}, preset ${pre.preset}${Object.keys(override).length ? ', flags override the recorded transform' : ''})`,
  );
  const writer = new EmbeddingWriter(o.out, {
    model: resolve(model),
    engine: 'onnx',
    preprocessing: pre,
    normalized: e.normalized,
    roots: walked.roots.map((r) => resolve(r)),
  });
  try {
    writer.add(e.data, e.paths);
    writer.finish();
    console.error(
      `moco embed: ${e.count} images (${e.dim}-d) into ${o.out}${skipped.length ? `; ${skipped.length} skipped` : ''}`,
    );
    console.log(JSON.stringify({ command: 'embed', engine: 'onnx', out: o.out, count: e.count, dim: e.dim, skipped }));
  } catch (err) {
    writer.abort();
    throw err;
  }
}

function positive(flag: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive whole number of pixels, got '${v}'`);
  return n;
}
