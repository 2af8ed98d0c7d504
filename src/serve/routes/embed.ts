// Embeddings of uploaded images.
import type { FastifyPluginAsync } from 'fastify';
import { embedRequest, IMAGE_BODY } from '../images.js';
import type { RuntimeOptions } from '../plugins/runtime.js';
import { errors, ref } from '../schemas.js';

/** The content types of an image body (their OpenAPI request-body entries are added by plugins/openapi.ts). */
export const IMAGE_TYPES = ['image/*', 'application/octet-stream', 'multipart/form-data'];

export const embedRoutes: FastifyPluginAsync<RuntimeOptions> = async (app, { runtime }) => {
  app.post(
    '/v1/embed',
    {
      schema: {
        summary: 'embed images',
        description: IMAGE_BODY,
        consumes: IMAGE_TYPES,
        response: {
          200: {
            type: 'object',
            properties: {
              dim: { type: 'integer' },
              names: { type: 'array', items: { type: 'string' } },
              vectors: { type: 'array', items: ref('Vector') },
            },
          },
          ...errors(400, 413, 415, 422, 503),
        },
      },
    },
    async (req) => {
      const r = await embedRequest(runtime, req);
      return { dim: runtime.model!.info.dim, names: r.names, vectors: r.vectors.map((v) => Array.from(v)) };
    },
  );
};
