// `moco export --format onnx --web OUT/`: the browser page as a static folder — the page, onnxruntime-web's
// wasm files, the model and its recorded preprocessing (model.json), and optionally a small gallery (vectors
// and thumbnails of a few images, embedded by the same ONNX model through onnxruntime: onnxruntime-node where installed, else onnxruntime-web) that the page
// compares against when no server is there.
import type { Found } from '../data/walk.js';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTextAtomic } from '../io/atomic.js';
import { OnnxRunner } from '../io/onnx-runtime.js';
import { preprocessImage } from '../serve/preprocess.js';
import {
  MANIFEST_FILE,
  MODEL_FILE,
  modelManifest,
  ORT_FILES,
  ortWebDist,
  PAGE_FILES,
  thumbnailJpeg,
  WEB_ROOT,
} from '../serve/page.js';
import type { ServeModelInfo } from '../serve/model.js';

/** One gallery image as the page reads it from gallery.json. */
export interface GalleryItem {
  /** The file's path as given. */
  name: string;
  /** The first folder below the folder walked (ImageFolder's class), if any. */
  label: string | null;
  /** A 160-px JPEG thumbnail as a data: URL. */
  thumb: string;
  vector: number[];
}

export interface WebExportOptions {
  /** Image files to embed into the bundled gallery, with their labels (as walkImages finds them); default none. */
  gallery?: readonly Found[];
  /** Called for a gallery file that cannot be used. */
  onSkip?: (file: string, reason: string) => void;
}

/**
 * Writes the static page folder `out` for an ONNX model (`bytes`, described by `info`). Every file is written
 * atomically. Returns the paths written.
 */
export async function writeWebFolder(
  out: string,
  bytes: Uint8Array,
  info: ServeModelInfo,
  o: WebExportOptions = {},
): Promise<string[]> {
  mkdirSync(join(out, 'ort'), { recursive: true });
  const written: string[] = [];
  const put = (name: string, data: string | Uint8Array): void => {
    writeTextAtomic(join(out, name), data);
    written.push(join(out, name));
  };
  for (const f of PAGE_FILES) put(f, readFileSync(join(WEB_ROOT, f)));
  for (const f of ORT_FILES) put(join('ort', f), readFileSync(join(ortWebDist(), f)));
  put(MODEL_FILE, bytes);
  const items = o.gallery?.length ? await embedGallery(join(out, MODEL_FILE), info, o.gallery, o.onSkip) : [];
  if (items.length) put('gallery.json', JSON.stringify({ dim: info.dim, items }));
  put(
    MANIFEST_FILE,
    JSON.stringify(
      {
        ...modelManifest(info, { source: info.source, index: null }),
        server: false,
        gallery: items.length ? 'gallery.json' : null,
        gallerySize: items.length,
      },
      null,
      1,
    ) + '\n',
  );
  return written;
}

/** Embeds gallery images with the exported model exactly as `moco serve` does (sharp, then onnxruntime). */
async function embedGallery(
  model: string,
  info: ServeModelInfo,
  files: readonly Found[],
  onSkip?: (file: string, reason: string) => void,
): Promise<GalleryItem[]> {
  const s = info.preprocessing.size;
  // A child process: the CLI that calls this has libtorch loaded.
  const runner = await OnnxRunner.open(model, { isolate: true });
  try {
    const items: GalleryItem[] = [];
    for (const { path: f, label } of files) {
      const x = new Float32Array(3 * s * s);
      let bytes: Buffer;
      try {
        bytes = readFileSync(f);
        await preprocessImage(bytes, info.preprocessing, x, 0);
      } catch (e) {
        onSkip?.(f, (e as Error).message);
        continue;
      }
      const y = Object.values(await runner.run(x, [1, 3, s, s]))[0]!;
      const thumb = await thumbnailJpeg(bytes);
      items.push({
        name: f,
        label,
        thumb: `data:image/jpeg;base64,${thumb.toString('base64')}`,
        vector: Array.from(y.data),
      });
    }
    return items;
  } finally {
    await runner.close();
  }
}
