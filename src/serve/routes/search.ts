// Nearest neighbours in the index, of uploaded images or of a vector.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { HttpError } from '../errors.js';
import { embedRequest, IMAGE_BODY } from '../images.js';
import type { RuntimeOptions } from '../plugins/runtime.js';
import { decimalInt, errors, ref } from '../schemas.js';
import type { SearchFilter, SearchHit } from '../search-backend.js';
import { IMAGE_TYPES } from './embed.js';

/** Neighbours a search may ask for. */
const TOP_MIN = 1;
const TOP_MAX = 1000;

const NO_INDEX =
  'this server has no index to search: start moco serve with --index FILE (an embedding file from ' +
  '`moco embed`) or --db URI (a collection from `moco index`)';

type SearchRequest = FastifyRequest<{ Querystring: { top?: string; label?: string }; Body: unknown }>;

export const searchRoutes: FastifyPluginAsync<RuntimeOptions> = async (app, { runtime }) => {
  const thumb = (h: SearchHit): SearchHit & { thumbnail: string } => ({
    ...h,
    path: runtime.shownImage(h.path),
    thumbnail: `/v1/thumbnail/${h.row}`,
  });

  app.post(
    '/v1/search',
    {
      schema: {
        summary: 'nearest neighbours of images or of a vector',
        description: `${IMAGE_BODY} (top and label in the query string), or JSON {vector, top, filter}`,
        consumes: ['application/json', ...IMAGE_TYPES],
        querystring: {
          type: 'object',
          properties: {
            top: { type: 'string', description: `a decimal integer in ${TOP_MIN}…${TOP_MAX}; default 10` },
            label: { type: 'string' },
          },
        },
        body: {
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['vector'],
                additionalProperties: false,
                properties: {
                  // Not the shared Vector: a query vector is also bounded in length.
                  vector: { type: 'array', items: { type: 'number' }, minItems: 1, maxItems: 65536 },
                  top: { type: 'integer', minimum: TOP_MIN, maximum: TOP_MAX, default: 10 },
                  filter: ref('SearchFilter'),
                },
              },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              top: { type: 'integer' },
              results: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { query: { type: 'string' }, neighbours: { type: 'array', items: ref('SearchHit') } },
                },
              },
            },
          },
          ...errors(400, 404, 413, 415, 422, 503),
        },
      },
    },
    async (req: SearchRequest) => {
      const { model: m } = runtime.ready();
      const b = runtime.backend;
      if (!b) throw new HttpError(404, 'no_index', NO_INDEX);
      const dim = m.info.dim;
      if (/^application\/json\b/.test(req.headers['content-type'] ?? '')) {
        const body = req.body as { vector: number[]; top?: number; filter?: SearchFilter };
        const n = body.vector.length;
        if (n !== dim)
          throw new HttpError(400, 'wrong_dim', `vector has ${n} values; this model and index are ${dim}-d`);
        if (!body.vector.every(Number.isFinite)) {
          throw new HttpError(400, 'bad_vector', 'vector values must be finite numbers');
        }
        const top = body.top ?? 10;
        const hits = await b.search(Float32Array.from(body.vector), top, runtime.serverFilter(body.filter ?? {}));
        return { top, results: [{ query: 'vector', neighbours: hits[0]!.map(thumb) }] };
      }
      const top = req.query.top === undefined ? 10 : decimalInt('querystring/top', req.query.top, TOP_MIN, TOP_MAX);
      const r = await embedRequest(runtime, req);
      const q = new Float32Array(r.vectors.length * dim);
      r.vectors.forEach((v, i) => q.set(v, i * dim));
      const hits = await b.search(q, top, req.query.label !== undefined ? { label: req.query.label } : {});
      return { top, results: r.names.map((name, i) => ({ query: name, neighbours: hits[i]!.map(thumb) })) };
    },
  );
};
