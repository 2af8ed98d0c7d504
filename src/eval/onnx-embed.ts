// Embeddings through onnxruntime from an exported model: no libtorch at run time (this file and what it imports
// never load the native addon), for Node services. Each image goes through the model's recorded evaluation
// transform (data/eval-transform.ts), the one `moco serve` and the browser page apply.
import { readFileSync } from 'node:fs';
import { preprocessImage, recordedPreprocessing, type Preprocessing } from '../data/eval-transform.js';
import { decodeModel } from '../io/onnx-proto.js';
import { OnnxRunner } from '../io/onnx-runtime.js';
import { npyHeader, pickRows } from './embedding-file.js';

export interface OnnxEmbedOptions {
  /**
   * Replaces parts of the model's recorded preprocessing (for a model exported without it); default none: the
   * model's own, as `moco serve` uses it.
   */
  preprocessing?: Partial<Preprocessing>;
  /** Images per onnxruntime call; default 32. */
  batchSize?: number;
  /** Run onnxruntime in a child process; default false. */
  isolate?: boolean;
  /** onnxruntime intra-op threads; default onnxruntime's. */
  threads?: number;
  /** Called once per file that could not be decoded; without it such a file throws. */
  onSkip?: (s: { path: string; reason: string }) => void;
}

export interface Embeddings {
  /** Row-major [count, dim]. */
  data: Float32Array;
  count: number;
  dim: number;
  /** The files embedded, in row order (those that `onSkip` received are left out). */
  paths: string[];
  /** The preprocessing applied. */
  preprocessing: Preprocessing;
  /** The model's output is L2-normalised (its metadata says so). */
  normalized: boolean;
}

/** What an `.onnx` file records: its evaluation transform (see {@link recordedPreprocessing}) and whether its output is L2-normalised. */
export function onnxModelMeta(model: string): { preprocessing: Preprocessing; normalized: boolean } {
  const m = decodeModel(new Uint8Array(readFileSync(model)));
  const meta = new Map((m.metadataProps ?? []).map((p) => [p.key, p.value]));
  return { preprocessing: recordedPreprocessing(meta), normalized: meta.get('normalized') === 'true' };
}

/** Embeds image files with an ONNX model exported by `moco export --format onnx`. */
export async function embedFilesOnnx(
  model: string,
  files: readonly string[],
  o: OnnxEmbedOptions = {},
): Promise<Embeddings> {
  const meta = onnxModelMeta(model);
  const pre: Preprocessing = { ...meta.preprocessing, ...o.preprocessing };
  const size = pre.size;
  const bs = o.batchSize ?? 32;
  const runner = await OnnxRunner.open(model, { isolate: o.isolate, threads: o.threads });
  try {
    const parts: Float32Array[] = [];
    const paths: string[] = [];
    let dim = 0;
    for (let i = 0; i < files.length; i += bs) {
      const chunk = files.slice(i, i + bs);
      const x = new Float32Array(chunk.length * 3 * size * size);
      const ok = await Promise.all(
        chunk.map(async (f, j) => {
          try {
            await preprocessImage(f, pre, x, j * 3 * size * size);
            return true;
          } catch (e) {
            if (!o.onSkip) throw new Error(`${f}: ${(e as Error).message}`, { cause: e });
            o.onSkip({ path: f, reason: (e as Error).message });
            return false;
          }
        }),
      );
      const keep = chunk.flatMap((f, j) => (ok[j] ? [j] : []));
      if (!keep.length) continue;
      const input = keep.length === chunk.length ? x : pickRows(x, keep, 3 * size * size);
      const out = Object.values(await runner.run(input, [keep.length, 3, size, size]))[0]!;
      dim = out.dims[1]!;
      parts.push(out.data);
      paths.push(...keep.map((j) => chunk[j]!));
    }
    const data = new Float32Array(paths.length * dim);
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { data, count: paths.length, dim, paths, preprocessing: pre, normalized: meta.normalized };
  } finally {
    await runner.close();
  }
}

/** A NumPy .npy file (format 1.0, little-endian float32) of shape [count, dim]. */
export function toNpy(e: Pick<Embeddings, 'data' | 'count' | 'dim'>): Buffer {
  return Buffer.concat([npyHeader(e.count, e.dim), Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength)]);
}
