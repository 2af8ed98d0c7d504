// The browser page: its files at /, onnxruntime-web's at /ort/, and the model it runs (its manifest is the info
// document, routes/info.ts).
import type { FastifyPluginAsync } from 'fastify';
import fastifyStatic from '@fastify/static';
import { MODEL_FILE, ortWebDist, WEB_ROOT } from '../page.js';
import type { RuntimeOptions } from '../plugins/runtime.js';

export interface PageOptions extends RuntimeOptions {
  /** Folder of the page; default {@link WEB_ROOT}. */
  webRoot?: string;
}

export const pageRoutes: FastifyPluginAsync<PageOptions> = async (app, { runtime, webRoot }) => {
  app.get(`/${MODEL_FILE}`, { schema: { hide: true } }, async (_req, reply) => {
    const { model: m } = runtime.ready();
    const bytes = Buffer.from(m.onnx.buffer, m.onnx.byteOffset, m.onnx.byteLength);
    return reply.type('application/octet-stream').send(bytes);
  });
  await app.register(fastifyStatic, { root: webRoot ?? WEB_ROOT, prefix: '/', index: ['index.html'] });
  await app.register(fastifyStatic, { root: ortWebDist(), prefix: '/ort/', decorateReply: false });
};
