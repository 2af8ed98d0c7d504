// Worker thread of TorchRunner: the checkpoint's encoder on libtorch, off the server's event loop. One request at a
// time: { id, data (n × 3 × size × size, float32), n, size } in, { id, data (n × dim, L2-normalised) } out.
// workerData: { path, feature, threads (0: libtorch's default) }. Message id -1 reports the load.
import { parentPort, workerData } from 'node:worker_threads';
import { loadEncoder, type Encoder } from '../eval/encoder.js';
import { F, setNumThreads, tensor, tidy } from '../torch/index.js';

interface Request {
  id: number;
  data: Float32Array;
  n: number;
  size: number;
}
const { path, feature, threads } = workerData as { path: string; feature: 'backbone' | 'head'; threads: number };
const port = parentPort!;

let enc: Encoder | null = null;
try {
  if (threads > 0) setNumThreads(threads);
  enc = loadEncoder(path);
  enc.dim(feature); // a head request on a checkpoint without one fails here, at load
  port.postMessage({ id: -1, ok: true });
} catch (e) {
  port.postMessage({ id: -1, ok: false, error: (e as Error).message });
}

port.on('message', (m: Request | { close: true }) => {
  if ('close' in m) {
    enc?.dispose();
    enc = null;
    port.close();
    return;
  }
  try {
    if (!enc) throw new Error('the encoder did not load');
    const e = enc;
    const out = tidy(() => {
      const x = tensor(m.data, { shape: [m.n, 3, m.size, m.size] });
      return (F.normalize(e.encode(x, feature), { dim: 1 }).data() as Float32Array).slice();
    });
    port.postMessage({ id: m.id, ok: true, data: out }, [out.buffer]);
  } catch (e) {
    port.postMessage({ id: m.id, ok: false, error: (e as Error).message });
  }
});
