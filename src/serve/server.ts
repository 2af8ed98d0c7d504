// `moco serve`: the encoder (and an index) behind a fastify HTTP API, and the browser page. The app is built
// at once and loads the model in the background (GET /readyz answers 503 until it is ready); images are decoded
// by sharp in libuv's pool, batched across requests and run off the event loop (a checkpoint by libtorch in a
// worker thread, an .onnx model by onnxruntime in a child process: serve/model.ts), so the event loop stays free
// for health checks while a batch computes. Every bad input is a 4xx with a message saying why.
//
// The app is a stack of plugins: the runtime (plugins/runtime.ts), what every request goes through
// (plugins/http.ts), back-pressure, multipart, the OpenAPI document, the shared schemas (schemas.ts), then one
// plugin per route group (routes/).
import Fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import underPressure from '@fastify/under-pressure';
import { serveLimits, type ServeOptions } from './options.js';
import { httpPlugin } from './plugins/http.js';
import { openapiPlugin } from './plugins/openapi.js';
import { runtimePlugin, ServeRuntime } from './plugins/runtime.js';
import { embedRoutes } from './routes/embed.js';
import { healthRoutes } from './routes/health.js';
import { infoRoutes } from './routes/info.js';
import { pageRoutes } from './routes/page.js';
import { searchRoutes } from './routes/search.js';
import { thumbnailRoutes } from './routes/thumbnail.js';
import { schemaErrorFormatter, sharedSchemas } from './schemas.js';

export type { ServeOptions } from './options.js';
export type { ServePhase, ServeState } from './plugins/runtime.js';

/** Builds the service; the model loads in the background (`app.moco.loaded`). Listen with `app.listen`. */
export function buildServer(opts: ServeOptions): FastifyInstance {
  const app = Fastify({
    bodyLimit: serveLimits(opts).bodyBytes,
    logger: opts.logLevel ? { level: opts.logLevel } : false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Unknown fields (a filter key we do not have) are refused rather than silently dropped, and values are
    // never coerced: `top: true` or `top: "5"` is a 400, not 1 or 5. Query-string numbers are therefore strings in
    // the schemas, parsed by decimalInt. `verbose` gives the formatter each failing field's schema and value.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, verbose: true } },
    schemaErrorFormatter,
  });
  // Decorated here rather than in a plugin, which would run only once the app is readied: callers await
  // `app.moco.loaded` straight away.
  const runtime = new ServeRuntime(app, opts);
  app.decorate('moco', runtime);

  const { bodyBytes, files } = runtime.limits;
  const { allowedHosts = [], requestTimeoutMs = 30_000, maxEventLoopDelayMs = 0 } = opts;
  void app.register(runtimePlugin, { runtime });
  void app.register(httpPlugin, { runtime, allowedHosts, requestTimeoutMs });
  void app.register(underPressure, { maxEventLoopDelay: maxEventLoopDelayMs, retryAfter: 1, exposeStatusRoute: false });
  void app.register(multipart, { limits: { fileSize: bodyBytes, files, fields: 16, parts: files + 16 } });
  void app.register(openapiPlugin);
  void app.register(sharedSchemas);
  for (const routes of [healthRoutes, infoRoutes, embedRoutes, searchRoutes, thumbnailRoutes]) {
    void app.register(routes, { runtime });
  }
  void app.register(pageRoutes, { runtime, webRoot: opts.webRoot });
  return app;
}
