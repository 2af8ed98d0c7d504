// The model behind `moco serve`: an exported ONNX file as is, or a checkpoint exported to ONNX in memory (the
// same graph `moco export --format onnx` writes), run by onnxruntime in a child process so that a forward pass
// never blocks the server's event loop and onnxruntime never shares a process with libtorch. The ONNX bytes are
// kept: the browser page runs the very same model with onnxruntime-web.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { decodeModel, encodeModel } from '../io/onnx-proto.js';
import { OnnxRunner } from '../io/onnx-runtime.js';
import { recordedPreprocessing, stemPreprocessing, type Preprocessing } from '../data/eval-transform.js';

export { stemPreprocessing } from '../data/eval-transform.js';

/** Which output the service embeds with. */
export type ServeFeature = 'backbone' | 'head';

export interface ServeModelOptions {
  /** Backbone (pooled, default) or head features; only for checkpoints (an ONNX file has one output). */
  feature?: ServeFeature;
  /** onnxruntime intra-op threads; default onnxruntime's (the machine's cores). */
  threads?: number;
}

/** What `/v1/info` reports about the model. */
export interface ServeModelInfo {
  /** The file given (a run directory resolves to its checkpoint file). */
  source: string;
  kind: 'checkpoint' | 'onnx';
  arch: string;
  feature: ServeFeature;
  /** Output vectors are L2-normalised. */
  normalized: boolean;
  dim: number;
  preprocessing: Preprocessing;
}

/**
 * Exports a checkpoint's encoder (file or run directory, any format `moco embed` reads) to ONNX in memory,
 * L2-normalised as `moco embed`'s vectors, with its evaluation preprocessing recorded in the model's metadata
 * (`preprocess`) and returned.
 */
export async function checkpointToOnnx(path: string, feature: ServeFeature = 'backbone'): Promise<{ bytes: Uint8Array; info: ServeModelInfo }> {
  const { loadEncoder } = await import('../eval/encoder.js');
  const { buildResNetOnnx } = await import('../io/onnx-export.js');
  const enc = loadEncoder(path);
  try {
    const preprocessing = enc.evalTransform();
    const dim = enc.dim(feature);
    // The bytes are served to browsers (/model.onnx): the checkpoint is named without the server's folders.
    const bytes = encodeModel(buildResNetOnnx(enc.model.stateDict(), {
      head: feature === 'head', normalize: true, metadata: { source: basename(enc.info.file), preprocess: JSON.stringify(preprocessing) },
    }));
    return { bytes, info: { source: resolve(enc.info.file), kind: 'checkpoint', arch: enc.info.arch + (enc.info.cifarStem ? ' (CIFAR stem)' : ''), feature, normalized: true, dim, preprocessing } };
  } finally {
    enc.dispose();
  }
}

/** A loaded model: preprocessing, ONNX bytes and a runner. Call {@link close} when done. */
export class ServeModel {
  private constructor(
    readonly info: ServeModelInfo,
    /** The ONNX model (served to the browser at /model.onnx). */
    readonly onnx: Uint8Array,
    private readonly runner: OnnxRunner,
    private readonly tmp: string | null,
  ) {}

  /** Loads an `.onnx` file or a checkpoint (file or run directory). */
  static async open(path: string, o: ServeModelOptions = {}): Promise<ServeModel> {
    const feature = o.feature ?? 'backbone';
    if (path.toLowerCase().endsWith('.onnx')) {
      if (o.feature === 'head') throw new Error(`--feature head applies to checkpoints; ${path} is an ONNX model with one output`);
      const bytes = new Uint8Array(readFileSync(path));
      const m = decodeModel(bytes);
      const meta = new Map((m.metadataProps ?? []).map((p) => [p.key, p.value]));
      const out = m.graph.output[0];
      const d = out?.type.tensorType.shape.dim[1];
      const dim = d && 'dimValue' in d ? Number(d.dimValue) : 0;
      if (!dim) throw new Error(`${path}: the model's output has no fixed size (need [batch, dim])`);
      const pre = recordedPreprocessing(meta);
      const runner = await OnnxRunner.open(path, { isolate: true, threads: o.threads });
      return new ServeModel({
        source: resolve(path), kind: 'onnx', arch: meta.get('arch') ?? basename(path), feature: meta.get('head') && meta.get('head') !== 'none' ? 'head' : 'backbone',
        normalized: meta.get('normalized') === 'true', dim, preprocessing: pre,
      }, bytes, runner, null);
    }
    // A checkpoint: libtorch loads it (any format the project reads) and the exporter writes its graph.
    const { bytes, info } = await checkpointToOnnx(path, feature);
    const tmp = mkdtempSync(join(tmpdir(), 'moco-serve-'));
    try {
      const file = join(tmp, 'model.onnx');
      writeFileSync(file, bytes);
      const runner = await OnnxRunner.open(file, { isolate: true, threads: o.threads });
      return new ServeModel(info, bytes, runner, tmp);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Embeds `n` preprocessed images (n × 3 × size × size, row-major); returns n × dim. */
  async embed(x: Float32Array, n: number): Promise<Float32Array> {
    const s = this.info.preprocessing.size;
    const out = Object.values(await this.runner.run(x, [n, 3, s, s]))[0]!;
    if (out.dims[0] !== n || out.dims[1] !== this.info.dim) throw new Error(`model returned [${out.dims.join(', ')}] for ${n} images, [${n}, ${this.info.dim}] expected`);
    return out.data;
  }

  async close(): Promise<void> {
    await this.runner.close();
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
  }
}
