import type { Command } from 'commander';
import { dispose } from '../../torch/index.js';
import { describeImport, exportMetadata, exportTensors } from '../../io/pretrained.js';
import { loadCheckpointWeights, loadEncoder } from '../../eval/encoder.js';
import { saveSafetensors } from '../../io/safetensors.js';
import { saveTorch } from '../../io/torch-save.js';
import { exportResNetOnnx } from '../../models/resnet-onnx.js';
import { saveDetectron2, saveMmdet } from '../../io/detection.js';

interface ExportOpts {
  format: string;
  out?: string;
  web?: string;
  gallery?: string[];
  galleryMax: string;
  head: boolean;
  opset: string;
  dynamicBatch: boolean;
  batch: string;
  normalize: boolean;
}

export function register(program: Command): void {
  program
    .command('export')
    .description('export the query encoder of a checkpoint (ours, official MoCo, torchvision) for other frameworks')
    .argument('<ckpt>', 'a checkpoint (.safetensors, .pth, .pth.tar) or a run directory (its latest checkpoint)')
    .option('--out <path>', 'output file (optional with --web)')
    .option(
      '--format <fmt>',
      'torchvision (.pth state dict for torch.load), safetensors, onnx, detectron2 (.pkl), or mmdet (.pth)',
      'torchvision',
    )
    .option('--head', 'include the projection head (fc or MLP); for onnx also the L2 normalisation', false)
    .option('--opset <n>', 'ONNX opset', '17')
    .option('--dynamic-batch', 'ONNX: symbolic batch dimension (default)', true)
    .option('--no-dynamic-batch', 'ONNX: fixed batch of --batch')
    .option('--batch <n>', 'ONNX: batch size when not dynamic', '1')
    .option('--no-normalize', 'ONNX: no L2 normalisation of the output')
    .option(
      '--web <dir>',
      'ONNX: also write the browser page as a static folder (page, onnxruntime-web, model.onnx, model.json)',
    )
    .option('--gallery <paths...>', "with --web: images (files or folders) bundled as the page's gallery")
    .option('--gallery-max <n>', 'with --web: most gallery images', '200')
    .action(async (ckpt: string, o: ExportOpts) => {
      if (o.web !== undefined) return exportWeb(ckpt, o);
      if (!o.out) throw new Error('--out <path> is required (or --format onnx --web <dir>)');
      const out = o.out;
      const { weights: w } = loadCheckpointWeights(ckpt);
      try {
        console.error(describeImport(w));
        const sd = exportTensors(w, o.head || o.format === 'onnx');
        switch (o.format) {
          case 'torchvision':
            saveTorch(out, sd);
            break;
          case 'safetensors':
            saveSafetensors(out, sd, exportMetadata(w, ckpt, o.head));
            break;
          case 'onnx': {
            if (w.family === 'vit')
              throw new Error(
                `--format onnx: ${ckpt} is a Vision Transformer, and the ONNX exporter writes ResNets only so far; --format safetensors or torchvision export its weights under timm's names`,
              );
            // The encoder's evaluation transform goes into the model, so that every ONNX consumer (moco embed,
            // moco serve, the browser page) feeds it images as the checkpoint's own evaluation does.
            const enc = loadEncoder(ckpt);
            const preprocess = JSON.stringify(enc.evalTransform());
            enc.dispose();
            const bytes = exportResNetOnnx(out, sd, {
              head: o.head,
              normalize: o.normalize,
              opset: Number(o.opset),
              dynamicBatch: o.dynamicBatch,
              batchSize: Number(o.batch),
              metadata: { source: ckpt, preprocess },
            });
            console.error(`ONNX opset ${o.opset}, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
            break;
          }
          case 'detectron2': // the head too (as stem.fc.*), as the official converter writes it
            saveDetectron2(out, new Map([...w.backbone, ...w.head]));
            break;
          case 'mmdet':
            saveMmdet(out, sd, { ...w.meta, source: ckpt, layout: w.layout });
            break;
          default:
            throw new Error(`unknown --format '${o.format}' (torchvision, safetensors, onnx, detectron2, mmdet)`);
        }
        console.error(`wrote ${out}`);
      } finally {
        dispose([...w.backbone.values(), ...w.head.values()]);
      }
    });
}

async function exportWeb(ckpt: string, o: ExportOpts): Promise<void> {
  if (o.format !== 'onnx') throw new Error(`--web needs --format onnx (got --format ${o.format})`);
  if (!o.normalize) throw new Error('--web serves normalised embeddings; drop --no-normalize');
  const max = Number(o.galleryMax);
  if (!Number.isInteger(max) || max < 1)
    throw new Error(`--gallery-max must be a positive integer, got '${o.galleryMax}'`);
  const { checkpointToOnnx } = await import('../../serve/model.js');
  const { writeWebFolder } = await import('../../views/web-export.js');
  const { walkImages } = await import('../../data/walk.js');
  const { writeTextAtomic } = await import('../../io/atomic.js');
  const gallery = o.gallery
    ? walkImages(o.gallery, { onSkip: (s) => console.error(`moco export: gallery: skipping ${s.path}: ${s.reason}`) })
        .found
    : [];
  if (o.gallery && !gallery.length) throw new Error(`--gallery ${o.gallery.join(' ')}: no image files found`);
  // Too many: an evenly spaced subset, so that every folder of a sorted ImageFolder keeps its share.
  const picked =
    gallery.length > max
      ? Array.from({ length: max }, (_, i) => gallery[Math.floor((i * gallery.length) / max)]!)
      : gallery;
  if (gallery.length > max)
    console.error(`moco export: gallery of ${gallery.length} images, ${max} evenly spaced kept (--gallery-max)`);
  const { bytes, info } = await checkpointToOnnx(ckpt, o.head ? 'head' : 'backbone');
  const files = await writeWebFolder(o.web!, bytes, info, {
    gallery: picked,
    onSkip: (f, why) => console.error(`moco export: gallery: skipping ${f}: ${why}`),
  });
  if (o.out) writeTextAtomic(o.out, bytes);
  console.error(
    `moco export: wrote the page to ${o.web} (${files.length} files, ${info.dim}-d ${info.feature}, ${info.preprocessing.size}-px input)${o.out ? ` and ${o.out}` : ''}; serve the folder with any static file server`,
  );
}
