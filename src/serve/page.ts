// The browser page's assets, owned here for both ways the page is delivered: `moco serve` (served at / and
// /ort/, model.json answered live) and `moco export --web` (views/web-export.ts copies them into a folder). The
// page reads the same model.json and shows the same thumbnails either way, so both are built here.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import type { ServeModelInfo } from './model.js';

/** The browser page's folder in this package. */
export const WEB_ROOT = fileURLToPath(new URL('../../../src/views/web/', import.meta.url));

/** onnxruntime-web's dist folder (its .mjs and .wasm files, served at /ort/). */
export function ortWebDist(): string {
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

/** The page's own files in {@link WEB_ROOT}. */
export const PAGE_FILES: readonly string[] = ['index.html', 'app.js', 'style.css'];

/** The files of {@link ortWebDist} that the page's `ort/ort.wasm.min.mjs` loads. */
export const ORT_FILES: readonly string[] = [
  'ort.wasm.min.mjs',
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
];

/** The manifest's name (see {@link modelManifest}), a path on the server and a file in an export. */
export const MANIFEST_FILE = 'model.json';

/** The model file's name next to the manifest, on the server and in an export. */
export const MODEL_FILE = 'model.onnx';

/** Side of a thumbnail, px (a square JPEG cropped to cover it). */
export const THUMBNAIL_PX = 160;

/** The search index as model.json describes it. */
export interface ManifestIndex {
  kind: string;
  source: string;
  size: number;
  dim: number;
}

/** What {@link modelManifest} gives. */
export interface ModelManifest {
  model: Record<string, unknown>;
  dim: number;
  preprocessing: ServeModelInfo['preprocessing'];
  index: ManifestIndex | null;
}

/**
 * The part of model.json that the page reads wherever it comes from: the model (`source` as the client is to see
 * it; `engine` only where a server runs it), its output size, its recorded preprocessing and the index (null for
 * none). The server adds its batching and limits and `server: true`; an export adds its gallery and `server: false`.
 */
export function modelManifest(
  info: ServeModelInfo,
  o: { source: string; engine?: string; index: ManifestIndex | null },
): ModelManifest {
  const engine = o.engine === undefined ? {} : { engine: o.engine };
  return {
    model: {
      source: o.source,
      kind: info.kind,
      arch: info.arch,
      feature: info.feature,
      normalized: info.normalized,
      ...engine,
      onnx: MODEL_FILE,
    },
    dim: info.dim,
    preprocessing: info.preprocessing,
    index: o.index,
  };
}

/**
 * A JPEG thumbnail ({@link THUMBNAIL_PX} px square, upright, cropped to cover) of an image file or its bytes.
 * `maxPixels` bounds the source image (sharp's default where not given).
 */
export function thumbnailJpeg(input: string | Buffer, maxPixels?: number): Promise<Buffer> {
  const image = maxPixels === undefined ? sharp(input) : sharp(input, { limitInputPixels: maxPixels });
  return image.autoOrient().resize(THUMBNAIL_PX, THUMBNAIL_PX, { fit: 'cover' }).jpeg({ quality: 80 }).toBuffer();
}
