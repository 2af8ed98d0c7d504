// Inference through onnxruntime, for services that run an exported model without libtorch. This file imports
// nothing from src/torch. onnxruntime is loaded lazily and can run in a child process: loading it next to
// libtorch has conflicted on some builds (protobuf, oneDNN symbols). onnxruntime-node (native) is used where it is
// installed; it is not a dependency of the package (its install script downloads CUDA libraries, and where that
// fails npm silently drops it), so otherwise onnxruntime-web (WebAssembly, a dependency: the browser page's
// runtime) runs the model in Node, with the same results and slower.
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface OnnxRunnerOptions {
  /** Run onnxruntime in a child process (isolation from libtorch); default false. */
  isolate?: boolean;
  /** onnxruntime intra-op threads; default: onnxruntime's choice (the machine's cores). */
  threads?: number;
}

/** One output of a run: row-major float32 data and its dimensions. */
export interface OnnxOutput {
  data: Float32Array;
  dims: number[];
}

// onnxruntime-common's API, as both runtimes export it; typed through onnxruntime-web (a dependency; onnxruntime-node
// is not, so the published declarations do not name it).
type Ort = typeof import('onnxruntime-web');
type Session = import('onnxruntime-web').InferenceSession;

/** Which onnxruntime runs the models: the native one (onnxruntime-node) or WebAssembly (onnxruntime-web). */
export type OrtBackend = 'onnxruntime-node' | 'onnxruntime-web';

/** Loads onnxruntime-node where it is installed, else onnxruntime-web (a dependency). */
export async function loadOrt(): Promise<{ ort: Ort; backend: OrtBackend }> {
  try {
    return { ort: (await import('onnxruntime-node')) as unknown as Ort, backend: 'onnxruntime-node' };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw e;
    return { ort: await import('onnxruntime-web'), backend: 'onnxruntime-web' };
  }
}

/** Opens a session in this process. */
export async function openSession(
  path: string,
  threads?: number,
): Promise<{ ort: Ort; session: Session; backend: OrtBackend }> {
  const { ort, backend } = await loadOrt();
  if (backend === 'onnxruntime-web') {
    if (threads) ort.env.wasm.numThreads = threads;
    // onnxruntime-web takes the model's bytes (a string would be fetched as a URL).
    return {
      ort,
      backend,
      session: await ort.InferenceSession.create(new Uint8Array(readFileSync(path)), { graphOptimizationLevel: 'all' }),
    };
  }
  // onnxruntime rejects an explicit undefined: leave the key out for its default.
  const session = await ort.InferenceSession.create(path, {
    graphOptimizationLevel: 'all',
    ...(threads ? { intraOpNumThreads: threads } : {}),
  });
  return { ort, session, backend };
}

/** Runs a single-input model on float32 `data` of `dims`; returns every output. */
export async function runSession(
  ort: Ort,
  session: Session,
  data: Float32Array,
  dims: number[],
): Promise<Record<string, OnnxOutput>> {
  const input = session.inputNames[0]!;
  const r = await session.run({ [input]: new ort.Tensor('float32', data, dims) });
  const out: Record<string, OnnxOutput> = {};
  for (const [k, v] of Object.entries(r)) {
    if (v.type !== 'float32') throw new Error(`ONNX output '${k}' is ${v.type}, float32 expected`);
    out[k] = { data: v.data as Float32Array, dims: [...v.dims] };
    v.dispose();
  }
  return out;
}

interface Reply {
  id: number;
  ok: boolean;
  outputs?: Record<string, OnnxOutput>;
  backend?: OrtBackend;
  error?: string;
}

/** A model ready to run, in this process or a child process. */
export class OnnxRunner {
  private next = 0;
  private readonly pending = new Map<
    number,
    { resolve: (o: Record<string, OnnxOutput>) => void; reject: (e: Error) => void }
  >();
  /** The onnxruntime that runs the model. */
  backend: OrtBackend = 'onnxruntime-node';

  private constructor(
    private readonly local: { ort: Ort; session: Session; backend: OrtBackend } | null,
    private readonly child: ChildProcess | null,
  ) {
    if (local) this.backend = local.backend;
    child?.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.backend) this.backend = m.backend;
      if (m.ok) p.resolve(m.outputs!);
      else p.reject(new Error(m.error));
    });
    child?.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`onnxruntime child process exited (${code})`));
      this.pending.clear();
    });
  }

  /** Opens `path` (an .onnx file). */
  static async open(path: string, opts: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
    if (!opts.isolate) return new OnnxRunner(await openSession(path, opts.threads), null);
    const worker = fileURLToPath(new URL('./onnx-worker.js', import.meta.url));
    const child = fork(worker, [path, String(opts.threads ?? 0)], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const r = new OnnxRunner(null, child);
    await r.call(new Float32Array(0), []); // waits for the session (an empty request only opens it)
    return r;
  }

  /** Runs the model on a float32 batch (e.g. [N, 3, H, W]); returns every output by name. */
  run(data: Float32Array, dims: number[]): Promise<Record<string, OnnxOutput>> {
    if (this.local) return runSession(this.local.ort, this.local.session, data, dims);
    return this.call(data, dims);
  }

  private call(data: Float32Array, dims: number[]): Promise<Record<string, OnnxOutput>> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child!.send({ id, data, dims });
    });
  }

  /** Releases the session (and ends the child process). */
  async close(): Promise<void> {
    if (this.local) await this.local.session.release();
    if (this.child && this.child.exitCode === null) {
      const exited = new Promise((r) => this.child!.once('exit', r));
      this.child.disconnect();
      await exited;
    }
  }
}
