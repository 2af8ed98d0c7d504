// Child process of OnnxRunner({ isolate: true }): one onnxruntime session, requests over IPC.
// argv: model path, threads (0 = onnxruntime's default).
import { openSession, runSession } from './onnx-runtime.js';

const [path, threadsArg] = process.argv.slice(2);
const threads = Number(threadsArg) || undefined;
const opened = openSession(path!, threads);
opened.catch(() => undefined); // reported per request below

process.on('message', (m: { id: number; data: Float32Array; dims: number[] }) => {
  void (async () => {
    try {
      const { ort, session, backend } = await opened;
      const outputs = m.dims.length ? await runSession(ort, session, m.data, m.dims) : {};
      process.send!({ id: m.id, ok: true, outputs, ...(m.dims.length ? {} : { backend }) });
    } catch (e) {
      process.send!({ id: m.id, ok: false, error: (e as Error).message });
    }
  })();
});
process.on('disconnect', () => process.exit(0));
