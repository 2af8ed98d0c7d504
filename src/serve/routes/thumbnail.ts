// Thumbnails of the index's images, which search hits link to.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../errors.js';
import { THUMBNAIL_PX, thumbnailJpeg } from '../page.js';
import type { RuntimeOptions } from '../plugins/runtime.js';
import { errors } from '../schemas.js';

export const thumbnailRoutes: FastifyPluginAsync<RuntimeOptions> = async (app, { runtime }) => {
  app.get(
    '/v1/thumbnail/:row',
    {
      schema: {
        summary: `a JPEG thumbnail (${THUMBNAIL_PX} px) of an index row's image`,
        params: {
          type: 'object',
          properties: {
            row: {
              type: 'string',
              pattern: '^(0|[1-9][0-9]{0,15})$',
              description: 'a decimal row number (collection ids reach 2^53)',
            },
          },
        },
        response: errors(400, 404),
      },
    },
    async (req: FastifyRequest<{ Params: { row: string } }>, reply: FastifyReply) => {
      // A decimal string, not a coerced number: '0x10' or '1e1' is a 400, not row 16 or 10.
      const row = Number(req.params.row);
      if (!Number.isSafeInteger(row)) throw new HttpError(400, 'bad_row', `row ${req.params.row} is beyond 2^53`);
      const backend = runtime.backend;
      const path = await backend?.path(row);
      if (path === undefined) {
        const size = backend ? ` (the index has ${backend.size})` : ' (no index)';
        throw new HttpError(404, 'no_row', `no index row ${req.params.row}${size}`);
      }
      let jpg: Buffer;
      try {
        jpg = await thumbnailJpeg(path, runtime.limits.pixels);
      } catch (e) {
        const why = (e as Error).message.split('\n')[0];
        const image = runtime.shownImage(path);
        throw new HttpError(404, 'image_unavailable', `row ${req.params.row}: ${image} cannot be read: ${why}`);
      }
      return reply.type('image/jpeg').header('cache-control', 'max-age=3600').send(jpg);
    },
  );
};
