// The OpenAPI document, at /openapi.json: @fastify/swagger collects every route registered after this plugin,
// and the shared schemas (schemas.ts) appear under components.schemas by their $id.
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';

type OpenApiObject = {
  paths?: Record<string, Record<string, { requestBody?: { required?: boolean; content: Record<string, unknown> } }>>;
};

/** Routes that take an image body. */
const IMAGE_ROUTES = ['/v1/embed', '/v1/search'];

export const openapiPlugin = fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        info: {
          title: 'moco serve',
          version: '0.1.0',
          description: 'Image embeddings and nearest-neighbour search from a MoCo encoder',
        },
      },
      // Shared schemas keep their $id as their name in components.schemas, rather than swagger's def-0, def-1, ….
      refResolver: {
        buildLocalReference: (json: { $id?: unknown }, _uri: unknown, _fragment: unknown, i: number) =>
          String(json.$id ?? `def-${i}`),
      },
      // Image bodies have no JSON schema for fastify to validate: their request-body entries are added here.
      transformObject: ({ openapiObject }: { openapiObject: OpenApiObject }) => {
        const binary = { schema: { type: 'string', format: 'binary' } };
        const files = { type: 'array', items: { type: 'string', format: 'binary' } };
        const form = { schema: { type: 'object', properties: { image: files } } };
        for (const path of IMAGE_ROUTES) {
          const op = openapiObject.paths?.[path]?.post;
          if (!op) continue;
          op.requestBody ??= { content: {} };
          op.requestBody.required = true;
          const image = { 'image/*': binary, 'application/octet-stream': binary, 'multipart/form-data': form };
          Object.assign(op.requestBody.content, image);
        }
        return openapiObject;
      },
    } as Parameters<typeof swagger>[1]);
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  },
  { name: 'moco-openapi', fastify: '5.x' },
);
