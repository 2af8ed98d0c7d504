// What the service runs: the model, its preprocessing, the index, the batching and the limits. The browser page
// reads the same document as model.json.
import type { FastifyPluginAsync } from 'fastify';
import { MANIFEST_FILE, modelManifest } from '../page.js';
import type { RuntimeOptions, ServeRuntime } from '../plugins/runtime.js';
import { ref } from '../schemas.js';

const INFO = {
  type: 'object',
  properties: {
    model: { type: 'object', additionalProperties: true },
    dim: { type: 'integer' },
    preprocessing: { type: 'object', additionalProperties: true },
    index: { anyOf: [{ type: 'null' }, { type: 'object', additionalProperties: true }] },
    batching: { type: 'object', additionalProperties: true },
    limits: { type: 'object', additionalProperties: true },
    server: { type: 'boolean' },
  },
} as const;

/** The info document; a 503 until the model is ready. */
function info(runtime: ServeRuntime): Record<string, unknown> {
  const { model: m, batcher: b } = runtime.ready();
  const backend = runtime.backend;
  const index = backend
    ? { kind: backend.kind, source: runtime.shownFile(backend.source), size: backend.size, dim: backend.dim }
    : null;
  return {
    ...modelManifest(m.info, { source: runtime.shownFile(m.info.source), engine: m.info.engine, index }),
    batching: { maxBatch: b.maxBatch, maxDelayMs: b.maxDelayMs, maxQueue: b.maxQueue, ...b.stats },
    limits: runtime.limits,
    server: true,
  };
}

export const infoRoutes: FastifyPluginAsync<RuntimeOptions> = async (app, { runtime }) => {
  app.get(
    '/v1/info',
    {
      schema: {
        summary: 'the model, its preprocessing, the index and the limits',
        response: { 200: INFO, 503: ref('Error') },
      },
    },
    async () => info(runtime),
  );
  app.get(`/${MANIFEST_FILE}`, { schema: { hide: true } }, async () => info(runtime));
};
