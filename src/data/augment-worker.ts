// Worker-thread side of the augmentation pool: builds one batch's views with its own libtorch thread (one
// intra-op thread each), so augmentation runs on other cores while the main thread trains.
import { parentPort, workerData } from 'node:worker_threads';
import { setNumThreads, tensor, tidy } from '../torch/index.js';
import { Augmentation, type AugmentSpec } from './augment.js';
import { SkipLog } from './decode.js';
import { Rng, type RngState } from './rng.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** A request to a worker. */
export type WorkerRequest =
  | { id: number; kind: 'paths'; paths: string[] }
  | { id: number; kind: 'drain' }
  | {
      id: number;
      kind: 'memory';
      spec: AugmentSpec;
      rng: RngState;
      views: number;
      images: Uint8Array;
      shape: [number, number, number, number];
    }
  | {
      id: number;
      kind: 'files';
      spec: AugmentSpec;
      rng: RngState;
      views: number;
      indices: Int32Array;
      blank?: boolean;
    };

/** A worker's answer: N·views×3×S×S float32 pixels (view-major), the dataset indices used, skipped files. */
export interface WorkerResponse {
  id: number;
  error?: string;
  data?: Float32Array;
  used?: Int32Array;
  skipped?: { path: string; reason: string }[];
  /** Positions in the batch left mid-gray (unreadable files). */
  blank?: Int32Array;
}

// Only when started by AugmentPool (a program that itself runs in a worker may import this module).
if (parentPort && (workerData as { mocoAugmentWorker?: boolean } | null)?.mocoAugmentWorker === true) {
  const port = parentPort;
  setNumThreads(1);
  let paths: string[] = [];
  const bad = new SkipLog(() => undefined);
  const augs = new Map<string, Augmentation>();
  const augFor = (spec: AugmentSpec): Augmentation => {
    const k = JSON.stringify(spec);
    let a = augs.get(k);
    if (!a) {
      a = new Augmentation(spec, { threads: null });
      augs.set(k, a);
    }
    return a;
  };
  port.on('message', (m: WorkerRequest) => {
    void (async (): Promise<WorkerResponse> => {
      if (m.kind === 'paths') {
        paths = m.paths;
        return { id: m.id };
      }
      if (m.kind === 'drain') {
        // Finalise every tensor wrapper while this environment is alive: the addon aborts the process if
        // wrappers are still being finalised when a worker is terminated.
        augs.clear();
        for (let i = 0; i < 3; i++) {
          collectGarbage();
          await new Promise((r) => setImmediate(r));
        }
        return { id: m.id };
      }
      const rng = Rng.fromState(m.rng);
      const aug = augFor(m.spec);
      if (m.kind === 'memory') {
        const n = m.shape[0];
        const data = tidy(() => {
          const imgs = tensor(m.images, { shape: m.shape, dtype: 'uint8' });
          return aug
            .fromMemoryStacked(
              imgs,
              Int32Array.from({ length: n }, (_, i) => i),
              rng,
              m.views,
            )
            .data() as Float32Array;
        });
        return { id: m.id, data };
      }
      const before = bad.list.length;
      const r = await aug.fromFilesStacked(
        (i) => paths[i]!,
        m.indices,
        rng,
        m.views,
        m.blank ? { blank: true, log: bad } : { substitute: (i) => (i + 1) % paths.length, log: bad },
      );
      const data = r.views.data() as Float32Array;
      r.views.dispose();
      return { id: m.id, data, used: r.used, skipped: bad.list.slice(before), blank: r.blank };
    })().then(
      (res) => port.postMessage(res, res.data ? [res.data.buffer as ArrayBuffer] : []),
      (e: unknown) =>
        port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies WorkerResponse),
    );
  });
}
