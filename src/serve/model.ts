// The model behind `moco serve`, run off the server's event loop: a checkpoint on onnxruntime-node (its ONNX export,
// in a child process) where that is installed, else on libtorch in a worker thread (the encoder `moco embed` uses);
// an exported ONNX file on onnxruntime in a child process (onnxruntime-node where installed, else onnxruntime-web's
// WebAssembly; never in the process that holds libtorch). A checkpoint's ONNX export is kept either way: the
// browser page runs that model with onnxruntime-web.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { decodeModel, encodeModel } from '../io/onnx-proto.js';
import { OnnxRunner } from '../io/onnx-runtime.js';
import { recordedPreprocessing, type Preprocessing } from '../data/eval-transform.js';

export { stemPreprocessing } from '../data/eval-transform.js';

/** Which output the service embeds with. */
export type ServeFeature = 'backbone' | 'head';

export interface ServeModelOptions {
  /** Backbone (pooled, default) or head features; only for checkpoints (an ONNX file has one output). */
  feature?: ServeFeature;
  /** Intra-op threads of the engine; default the engine's (libtorch: the physical cores; onnxruntime: all cores). */
  threads?: number;
  /**
   * What runs a checkpoint: libtorch in a worker thread, or onnxruntime-node on its ONNX export in a child
   * process (as an `.onnx` file is run), or 'auto' (default): onnxruntime-node where it is installed, else
   * libtorch. An `.onnx` file always runs on onnxruntime. On the shared 2-core machine (ResNet-18, 224 px,
   * Debian's libtorch 1.13) onnxruntime-node answered one client at 20–24 requests/s against libtorch's 16–18,
   * with 5–10% more memory (docs/benchmarks.md); onnxruntime-node is not a dependency (a consumer's npm drops it).
   */
  engine?: ServeEngine;
}

/** What computes the embeddings (see {@link ServeModelOptions.engine}). */
export type ServeEngine = 'libtorch' | 'onnxruntime' | 'auto';

/** onnxruntime-node can be imported from here (resolved, not loaded: this process holds libtorch). */
function hasOrtNode(): boolean {
  try {
    createRequire(import.meta.url).resolve('onnxruntime-node');
    return true;
  } catch {
    return false;
  }
}

/** Something that embeds preprocessed batches. */
interface Runner {
  /** Which engine, as `/v1/info` names it (`libtorch`, `onnxruntime-node`, `onnxruntime-web`). */
  readonly name: string;
  run(x: Float32Array, n: number, size: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** A checkpoint's encoder on libtorch in a worker thread (serve/torch-worker.ts), L2-normalised outputs. */
class TorchRunner implements Runner {
  readonly name = 'libtorch';
  private next = 0;
  private readonly pending = new Map<number, { resolve: (o: Float32Array) => void; reject: (e: Error) => void }>();
  private exited: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: { id: number; ok: boolean; data?: Float32Array; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.data ?? new Float32Array(0));
      else p.reject(new Error(m.error));
    });
    const fail = (e: Error): void => {
      this.exited = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', (e) => fail(e));
    worker.on('exit', (code) => fail(new Error(`the libtorch worker thread exited (${code})`)));
  }

  static async open(path: string, feature: ServeFeature, threads?: number): Promise<TorchRunner> {
    const worker = new Worker(new URL('./torch-worker.js', import.meta.url), {
      workerData: { path, feature, threads: threads ?? 0 },
    });
    const r = new TorchRunner(worker);
    try {
      await new Promise<Float32Array>((resolve, reject) => r.pending.set(-1, { resolve, reject }));
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    return r;
  }

  run(x: Float32Array, n: number, size: number): Promise<Float32Array> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, data: x, n, size });
    });
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise((r) => this.worker.once('exit', r));
    this.worker.postMessage({ close: true });
    await done;
  }
}

/** onnxruntime (in a child process) on an .onnx file. */
class OrtRunner implements Runner {
  constructor(private readonly runner: OnnxRunner) {}
  get name(): string {
    return this.runner.backend;
  }
  async run(x: Float32Array, n: number, size: number): Promise<Float32Array> {
    return Object.values(await this.runner.run(x, [n, 3, size, size]))[0]!.data;
  }
  close(): Promise<void> {
    return this.runner.close();
  }
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
  /** What computes the embeddings: `libtorch`, `onnxruntime-node` or `onnxruntime-web`. */
  engine?: string;
}

/**
 * Exports a checkpoint's encoder (file or run directory, any format `moco embed` reads) to ONNX in memory,
 * L2-normalised as `moco embed`'s vectors, with its evaluation preprocessing recorded in the model's metadata
 * (`preprocess`) and returned.
 */
export async function checkpointToOnnx(
  path: string,
  feature: ServeFeature = 'backbone',
): Promise<{ bytes: Uint8Array; info: ServeModelInfo }> {
  const { loadEncoder } = await import('../eval/encoder.js');
  const { buildResNetOnnx } = await import('../models/resnet-onnx.js');
  const enc = loadEncoder(path);
  try {
    const preprocessing = enc.evalTransform();
    const dim = enc.dim(feature);
    // The bytes are served to browsers (/model.onnx): the checkpoint is named without the server's folders.
    const bytes = encodeModel(
      buildResNetOnnx(enc.model.stateDict(), {
        head: feature === 'head',
        normalize: true,
        metadata: { source: basename(enc.info.file), preprocess: JSON.stringify(preprocessing) },
      }),
    );
    return {
      bytes,
      info: {
        source: resolve(enc.info.file),
        kind: 'checkpoint',
        arch: enc.info.arch + (enc.info.cifarStem ? ' (CIFAR stem)' : ''),
        feature,
        normalized: true,
        dim,
        preprocessing,
      },
    };
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
    private readonly runner: Runner,
    private readonly tmp: string | null,
  ) {
    info.engine = runner.name;
  }

  /** Loads an `.onnx` file or a checkpoint (file or run directory). */
  static async open(path: string, o: ServeModelOptions = {}): Promise<ServeModel> {
    const feature = o.feature ?? 'backbone';
    if (path.toLowerCase().endsWith('.onnx')) {
      if (o.feature === 'head')
        throw new Error(`--feature head applies to checkpoints; ${path} is an ONNX model with one output`);
      const bytes = new Uint8Array(readFileSync(path));
      const m = decodeModel(bytes);
      const meta = new Map((m.metadataProps ?? []).map((p) => [p.key, p.value]));
      const out = m.graph.output[0];
      const d = out?.type.tensorType.shape.dim[1];
      const dim = d && 'dimValue' in d ? Number(d.dimValue) : 0;
      if (!dim) throw new Error(`${path}: the model's output has no fixed size (need [batch, dim])`);
      const pre = recordedPreprocessing(meta);
      if (o.engine === 'libtorch')
        throw new Error(`${path} is an ONNX model: it runs on onnxruntime (engine libtorch takes a checkpoint)`);
      const runner = new OrtRunner(await OnnxRunner.open(path, { isolate: true, threads: o.threads }));
      return new ServeModel(
        {
          source: resolve(path),
          kind: 'onnx',
          arch: meta.get('arch') ?? basename(path),
          feature: meta.get('head') && meta.get('head') !== 'none' ? 'head' : 'backbone',
          normalized: meta.get('normalized') === 'true',
          dim,
          preprocessing: pre,
        },
        bytes,
        runner,
        null,
      );
    }
    // A checkpoint: libtorch loads it (any format the project reads) and the exporter writes its graph.
    const { bytes, info } = await checkpointToOnnx(path, feature);
    const engine =
      o.engine === undefined || o.engine === 'auto' ? (hasOrtNode() ? 'onnxruntime' : 'libtorch') : o.engine;
    if (engine === 'libtorch')
      return new ServeModel(info, bytes, await TorchRunner.open(path, feature, o.threads), null);
    const tmp = mkdtempSync(join(tmpdir(), 'moco-serve-'));
    try {
      const file = join(tmp, 'model.onnx');
      writeFileSync(file, bytes);
      const runner = new OrtRunner(await OnnxRunner.open(file, { isolate: true, threads: o.threads }));
      return new ServeModel(info, bytes, runner, tmp);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Embeds `n` preprocessed images (n × 3 × size × size, row-major); returns n × dim. */
  async embed(x: Float32Array, n: number): Promise<Float32Array> {
    const out = await this.runner.run(x, n, this.info.preprocessing.size);
    if (out.length !== n * this.info.dim)
      throw new Error(`model returned ${out.length} values for ${n} images, ${n} × ${this.info.dim} expected`);
    return out;
  }

  async close(): Promise<void> {
    await this.runner.close();
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
  }
}
