// Liveness and readiness, for load balancers and orchestrators.
import type { FastifyPluginAsync } from 'fastify';
import type { RuntimeOptions } from '../plugins/runtime.js';
import { ref } from '../schemas.js';

const STATUS = { type: 'object', properties: { status: { type: 'string' } } } as const;

export const healthRoutes: FastifyPluginAsync<RuntimeOptions> = async (app, { runtime }) => {
  app.get(
    '/healthz',
    {
      schema: { summary: 'liveness: the process answers', response: { 200: STATUS } },
    },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'readiness: 200 when the model is loaded, 503 while loading, draining or after a failed load',
        response: { 200: STATUS, 503: ref('Error') },
      },
    },
    async (_req, reply) => {
      const phase = runtime.phase;
      if (phase === 'ready') return { status: 'ready' };
      const message = phase === 'failed' ? runtime.failure : `server is ${phase}`;
      return reply.code(503).header('retry-after', '1').send({ error: phase, message });
    },
  );
};
