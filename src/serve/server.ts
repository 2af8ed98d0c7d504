// `moco serve`: the encoder (and an index) behind a fastify HTTP API, and the browser page. The app is built
// at once and loads the model in the background (GET /readyz answers 503 until it is ready); images are decoded
// by sharp in libuv's pool, batched across requests and run off the event loop (a checkpoint by libtorch in a
// worker thread, an .onnx model by onnxruntime in a child process: serve/model.ts), so the event loop stays free for health checks while a batch computes. Every bad input is a 4xx with a message saying why.
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import underPressure from '@fastify/under-pressure';
import sharp from 'sharp';
import { createRequire } from 'node:module';
import { basename, dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Batcher } from './batcher.js';
import { HttpError, unavailable } from './errors.js';
import { ServeModel, type ServeEngine, type ServeFeature, type ServeModelInfo } from './model.js';
import { preprocessImage } from './preprocess.js';
import { openSearchBackend, type SearchBackend, type SearchFilter, type SearchHit } from './search-backend.js';

export interface ServeOptions {
  /** Checkpoint (file or run directory, any format `moco embed` reads) or an exported `.onnx` model. */
  pretrained: string;
  /** Embedding file from `moco embed` searched exactly by /v1/search. */
  index?: string;
  /** LanceDB collection (directory or URI) of `moco index`, searched instead of `index`. */
  db?: string;
  /** Backbone (default) or head features, for checkpoints. */
  feature?: ServeFeature;
  /** What runs a checkpoint: libtorch in a worker thread, onnxruntime on its ONNX export, or 'auto' (default: onnxruntime-node where installed, else libtorch). */
  engine?: ServeEngine;
  /** Most images a forward pass; 1 turns batching off. Default 32. */
  maxBatch?: number;
  /** Longest wait before a partial batch is flushed, ms; default 5. */
  maxDelayMs?: number;
  /** Most images waiting for the model before requests get 503; default 256. */
  maxQueue?: number;
  /** Largest request body, bytes (413 beyond), a whole multipart request included; default 16 MiB. */
  bodyLimit?: number;
  /** Most pixels an image may have, checked from its header before decoding (413 beyond); default 50 M. */
  maxPixels?: number;
  /** Most files in one multipart request; default 64. */
  maxFiles?: number;
  /**
   * Event-loop delay beyond which requests get 503 with Retry-After (@fastify/under-pressure), ms; default 0
   * (off): the bounded queue is the back-pressure for embedding work, which never runs on the loop.
   */
  maxEventLoopDelayMs?: number;
  /** The engine's intra-op threads; default the engine's. */
  threads?: number;
  /** fastify's logger (pino) level, or false (default) for none. */
  logLevel?: string | false;
  /** Folder of the browser page; default the package's src/views/web. */
  webRoot?: string;
  /**
   * Host names (the `Host` header without its port) the service answers besides IP addresses and `localhost`;
   * any other gets 403, so that a page on another site that rebinds its DNS name to this address cannot read the
   * service. Default none.
   */
  allowedHosts?: readonly string[];
  /**
   * Longest time a request's body may take to arrive, ms: a slower one gets 408 and its connection is closed, so
   * trickling clients cannot hold connections and buffers open. Default 30 s.
   */
  requestTimeoutMs?: number;
  /**
   * Report absolute server paths (image paths in search hits, the model's and index's files in /v1/info). Default
   * false: image paths are relative to the index's root folder (the folder that was indexed, {@link SearchBackend.root})
   * and files are named without their folder, so that clients learn nothing of the server's file system.
   */
  absolutePaths?: boolean;
}

/** The service's phase, as /readyz reports it. */
export type ServePhase = 'loading' | 'ready' | 'draining' | 'failed';

/** State of a running service, decorated on the fastify instance as `app.moco`. */
export interface ServeState {
  readonly phase: ServePhase;
  /** Resolves when the model (and index) are loaded; rejects when loading failed. */
  readonly loaded: Promise<void>;
  readonly model: ServeModel | null;
  readonly backend: SearchBackend | null;
  readonly batcher: Batcher | null;
  /**
   * Graceful shutdown: stop accepting, report not-ready, finish queued work, release the model. With
   * `timeoutMs`, connections still open after that long (a slow upload, say) are closed.
   */
  drain(o?: { timeoutMs?: number }): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance { moco: ServeState }
}

/** The browser page's folder in this package. */
export const WEB_ROOT = fileURLToPath(new URL('../../../src/views/web/', import.meta.url));

/** onnxruntime-web's dist folder (its .mjs and .wasm files, served at /ort/). */
export function ortWebDist(): string {
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
}

const VECTOR = { type: 'array', items: { type: 'number' } } as const;
const ERROR = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } as const;
const HIT = {
  type: 'object',
  properties: { row: { type: 'integer' }, path: { type: 'string' }, label: { type: ['string', 'null'] }, score: { type: 'number' }, thumbnail: { type: 'string' } },
} as const;
const FILTER = {
  type: 'object', additionalProperties: false,
  description: 'every given field must match; label is the name of the image\'s folder',
  properties: {
    label: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 1000 }] },
    pathPrefix: { type: 'string' },
  },
} as const;
const IMAGE_BODY = 'one image as the raw body (Content-Type image/* or application/octet-stream) or multipart/form-data with one or more image files';

/** Builds the service; the model loads in the background (`app.moco.loaded`). Listen with `app.listen`. */
export function buildServer(opts: ServeOptions): FastifyInstance {
  const bodyLimit = opts.bodyLimit ?? 16 * 2 ** 20;
  const maxPixels = opts.maxPixels ?? 50e6;
  const maxFiles = opts.maxFiles ?? 64;
  const app = Fastify({
    bodyLimit,
    logger: opts.logLevel ? { level: opts.logLevel } : false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Unknown fields (a filter key we do not have) are refused rather than silently dropped, and values are
    // never coerced: `top: true` or `top: "5"` is a 400, not 1 or 5. Query-string numbers are therefore strings in
    // the schemas, parsed by decimalInt. `verbose` gives the formatter each failing field's schema and value.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, verbose: true } },
    schemaErrorFormatter,
  });

  let phase: ServePhase = 'loading';
  let failure = '';
  let model: ServeModel | null = null;
  let backend: SearchBackend | null = null;
  let batcher: Batcher | null = null;
  const loaded = (async () => {
    try {
      backend = await openSearchBackend({ index: opts.index, db: opts.db });
      model = await ServeModel.open(opts.pretrained, { feature: opts.feature, threads: opts.threads, engine: opts.engine });
      if (backend && backend.dim !== model.info.dim) {
        throw new Error(`${backend.source} holds ${backend.dim}-d vectors but the model ${opts.pretrained} gives ${model.info.dim}-d: serve the index with the model it was embedded with`);
      }
      const m = model;
      const s = m.info.preprocessing.size;
      batcher = new Batcher((x, n) => m.embed(x, n), 3 * s * s, m.info.dim, { maxBatch: opts.maxBatch, maxDelayMs: opts.maxDelayMs, maxQueue: opts.maxQueue });
      if (phase === 'loading') phase = 'ready';
    } catch (e) {
      phase = 'failed';
      failure = (e as Error).message;
      await backend?.close();
      throw e;
    }
  })();
  loaded.catch(() => undefined); // reported by /readyz and to whoever awaits app.moco.loaded

  const state: ServeState = {
    get phase() { return phase; },
    loaded,
    get model() { return model; },
    get backend() { return backend; },
    get batcher() { return batcher; },
    drain: (o = {}) => {
      if (phase !== 'failed') phase = 'draining';
      const closing = app.close();
      if (o.timeoutMs === undefined) return closing;
      // Past the deadline every connection is closed, a request still uploading included: a trickling client
      // cannot hold the process open.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => { timer = setTimeout(() => { app.server.closeAllConnections(); resolve(); }, o.timeoutMs); });
      return Promise.race([closing, deadline.then(() => closing)]).finally(() => clearTimeout(timer));
    },
  };
  app.decorate('moco', state);

  app.addHook('preClose', async () => { if (phase !== 'failed') phase = 'draining'; });
  app.addHook('onClose', async () => {
    // fastify runs onClose after in-flight requests are answered; queued work belongs to them.
    await loaded.catch(() => undefined);
    await batcher?.drain();
    await model?.close();
    await backend?.close();
  });

  // DNS rebinding: a foreign page whose name resolves to this address sends its own name as Host.
  const allowedHosts = new Set(['localhost', ...(opts.allowedHosts ?? []).map((h) => h.toLowerCase())]);
  app.addHook('onRequest', async (req) => {
    const host = hostName(req.headers.host ?? '');
    if (isIP(host) || allowedHosts.has(host) || host.endsWith('.localhost')) return;
    throw new HttpError(403, 'forbidden_host', `Host '${req.headers.host ?? ''}' is not served here: use an IP address or localhost, or start moco serve with --allowed-hosts ${host || 'NAME'}`);
  });

  // A body that has not arrived by the deadline is answered 408 and its connection closed (Node's own
  // requestTimeout did not fire for a request whose headers were already handed to the app).
  const requestTimeoutMs = opts.requestTimeoutMs ?? 30_000;
  app.addHook('onRequest', (req, reply, done) => {
    if (req.raw.complete) return done();
    const timer = setTimeout(() => {
      if (req.raw.complete || reply.sent) return;
      reply.raw.once('finish', () => req.raw.socket?.destroy());
      void reply.code(408).header('connection', 'close').send({ error: 'request_timeout', message: `the request body did not arrive within ${requestTimeoutMs / 1000} s (--request-timeout)` });
    }, requestTimeoutMs);
    const clear = (): void => clearTimeout(timer);
    req.raw.once('end', clear);
    req.raw.once('close', clear);
    reply.raw.once('finish', clear);
    done();
  });

  // Cross-origin isolation so that onnxruntime-web may use threads (SharedArrayBuffer) on the page.
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('content-security-policy', "frame-ancestors 'none'");
    reply.header('cross-origin-opener-policy', 'same-origin');
    reply.header('cross-origin-embedder-policy', 'require-corp');
    reply.header('cross-origin-resource-policy', 'same-origin');
    // While draining, answered keep-alive connections are closed rather than left open for keepAliveTimeout.
    if (phase === 'draining') reply.header('connection', 'close');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    if (err instanceof HttpError) return reply.code(err.status).headers(err.headers).send({ error: err.code, message: err.message });
    const sc = err.statusCode;
    if (err.validation) return reply.code(400).send({ error: 'invalid_request', message: err.message });
    if (sc && sc >= 400 && sc < 500) return reply.code(sc).send({ error: (err.code ?? 'bad_request').toLowerCase(), message: err.message });
    if (sc === 503) return reply.code(503).header('retry-after', '1').send({ error: 'unavailable', message: err.message });
    req.log.error(err);
    return reply.code(500).send({ error: 'internal', message: err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}; the API is described at /openapi.json` });
  });

  // Image bodies arrive whole (bounded by bodyLimit); text/plain and JSON keep fastify's parsers.
  app.addContentTypeParser(/^(image\/[\w.+-]+|application\/octet-stream)$/, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  void app.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs ?? 0,
    retryAfter: 1,
    exposeStatusRoute: false,
  });
  void app.register(multipart, { limits: { fileSize: bodyLimit, files: maxFiles, fields: 16, parts: maxFiles + 16 } });
  void app.register(swagger, {
    openapi: {
      info: { title: 'moco serve', version: '0.1.0', description: 'Image embeddings and nearest-neighbour search from a MoCo encoder' },
    },
    // Image bodies have no JSON schema for fastify to validate: their request-body entries are added here.
    transformObject: ({ openapiObject }: { openapiObject: { paths?: Record<string, Record<string, { requestBody?: { required?: boolean; content: Record<string, unknown> } }>> } }) => {
      const binary = { schema: { type: 'string', format: 'binary' } };
      const form = { schema: { type: 'object', properties: { image: { type: 'array', items: { type: 'string', format: 'binary' } } } } };
      for (const path of ['/v1/embed', '/v1/search']) {
        const op = openapiObject.paths?.[path]?.post;
        if (!op) continue;
        op.requestBody ??= { content: {} };
        op.requestBody.required = true;
        Object.assign(op.requestBody.content, { 'image/*': binary, 'application/octet-stream': binary, 'multipart/form-data': form });
      }
      return openapiObject;
    },
  } as Parameters<typeof swagger>[1]);

  // What clients see of a server path: relative to the index's root folder, or only a file's name, unless the
  // operator opted into absolute paths.
  const absolutePaths = opts.absolutePaths ?? false;
  const shownImage = (path: string): string => (absolutePaths || !backend?.root ? path : relative(backend.root, path));
  const shownFile = (path: string): string => (absolutePaths ? resolve(path) : basename(path));
  // A client's path prefix is relative to the root as the paths it is shown are.
  const filterOf = (f: SearchFilter): SearchFilter => (f.pathPrefix === undefined || absolutePaths || !backend?.root ? f
    : { ...f, pathPrefix: backend.root.endsWith(sep) ? backend.root + f.pathPrefix : backend.root + sep + f.pathPrefix });

  const ready = (): { model: ServeModel; batcher: Batcher } => {
    if (phase === 'loading') throw unavailable('the model is still loading; retry shortly', 2);
    if (phase === 'draining') throw unavailable('the server is shutting down', 5);
    if (phase === 'failed') throw new HttpError(503, 'failed', `the model failed to load: ${failure}`);
    return { model: model!, batcher: batcher! };
  };

  /** Embeds the images of a request (raw body or multipart files); names for multipart parts. */
  const embedRequest = async (req: FastifyRequest): Promise<{ names: string[]; vectors: Float32Array[] }> => {
    const { model: m, batcher: b } = ready();
    const images = await requestImages(req, bodyLimit);
    if (images.length + b.waiting > b.maxQueue) throw unavailable(`embedding queue is full (${b.waiting} of ${b.maxQueue} images waiting); retry shortly`, 1);
    const s = m.info.preprocessing.size;
    const inputs = await Promise.all(images.map(async (im) => {
      const x = new Float32Array(3 * s * s);
      try {
        await preprocessImage(im.bytes, m.info.preprocessing, x, 0, { maxPixels });
      } catch (e) {
        if (e instanceof HttpError && images.length > 1) throw new HttpError(e.status, e.code, `${im.name}: ${e.message}`);
        throw e;
      }
      return x;
    }));
    return { names: images.map((i) => i.name), vectors: await b.submit(inputs) };
  };

  app.register(async (api) => {
    api.get('/healthz', {
      schema: { summary: 'liveness: the process answers', response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } },
    }, async () => ({ status: 'ok' }));

    api.get('/readyz', {
      schema: { summary: 'readiness: 200 when the model is loaded, 503 while loading, draining or after a failed load', response: { 200: { type: 'object', properties: { status: { type: 'string' } } }, 503: ERROR } },
    }, async (_req, reply) => {
      if (phase === 'ready') return { status: 'ready' };
      return reply.code(503).header('retry-after', '1').send({ error: phase, message: phase === 'failed' ? failure : `server is ${phase}` });
    });

    const infoSchema = {
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
    const info = (): Record<string, unknown> => {
      const { model: m, batcher: b } = ready();
      const mi: ServeModelInfo = m.info;
      return {
        model: { source: shownFile(mi.source), kind: mi.kind, arch: mi.arch, feature: mi.feature, normalized: mi.normalized, engine: mi.engine, onnx: 'model.onnx' },
        dim: mi.dim,
        preprocessing: mi.preprocessing,
        index: backend ? { kind: backend.kind, source: shownFile(backend.source), size: backend.size, dim: backend.dim } : null,
        batching: { maxBatch: b.maxBatch, maxDelayMs: b.maxDelayMs, maxQueue: b.maxQueue, ...b.stats },
        limits: { bodyBytes: bodyLimit, pixels: maxPixels, files: maxFiles },
        server: true,
      };
    };
    api.get('/v1/info', { schema: { summary: 'the model, its preprocessing, the index and the limits', response: { 200: infoSchema, 503: ERROR } } }, async () => info());
    // The browser page reads model.json (also the name of the file in a static export).
    api.get('/model.json', { schema: { hide: true } }, async () => info());
    api.get('/model.onnx', { schema: { hide: true } }, async (_req, reply) => {
      const { model: m } = ready();
      return reply.type('application/octet-stream').send(Buffer.from(m.onnx.buffer, m.onnx.byteOffset, m.onnx.byteLength));
    });

    api.post('/v1/embed', {
      schema: {
        summary: 'embed images', description: IMAGE_BODY, consumes: ['image/*', 'application/octet-stream', 'multipart/form-data'],
        response: {
          200: { type: 'object', properties: { dim: { type: 'integer' }, names: { type: 'array', items: { type: 'string' } }, vectors: { type: 'array', items: VECTOR } } },
          400: ERROR, 413: ERROR, 415: ERROR, 422: ERROR, 503: ERROR,
        },
      },
    }, async (req) => {
      const r = await embedRequest(req);
      return { dim: model!.info.dim, names: r.names, vectors: r.vectors.map((v) => Array.from(v)) };
    });

    const thumb = (h: SearchHit): SearchHit & { thumbnail: string } => ({ ...h, path: shownImage(h.path), thumbnail: `/v1/thumbnail/${h.row}` });
    api.post('/v1/search', {
      schema: {
        summary: 'nearest neighbours of images or of a vector',
        description: `${IMAGE_BODY} (top and label in the query string), or JSON {vector, top, filter}`,
        consumes: ['application/json', 'image/*', 'application/octet-stream', 'multipart/form-data'],
        querystring: { type: 'object', properties: { top: { type: 'string', description: `a decimal integer in ${TOP_MIN}…${TOP_MAX}; default 10` }, label: { type: 'string' } } },
        body: {
          content: {
            'application/json': {
              schema: {
                type: 'object', required: ['vector'], additionalProperties: false,
                properties: { vector: { ...VECTOR, minItems: 1, maxItems: 65536 }, top: { type: 'integer', minimum: TOP_MIN, maximum: TOP_MAX, default: 10 }, filter: FILTER },
              },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: { top: { type: 'integer' }, results: { type: 'array', items: { type: 'object', properties: { query: { type: 'string' }, neighbours: { type: 'array', items: HIT } } } } },
          },
          400: ERROR, 404: ERROR, 413: ERROR, 415: ERROR, 422: ERROR, 503: ERROR,
        },
      },
    }, async (req: FastifyRequest<{ Querystring: { top?: string; label?: string }; Body: unknown }>) => {
      const { model: m } = ready();
      if (!backend) throw new HttpError(404, 'no_index', 'this server has no index to search: start moco serve with --index FILE (an embedding file from `moco embed`) or --db URI (a collection from `moco index`)');
      const b = backend;
      const isJson = /^application\/json\b/.test(req.headers['content-type'] ?? '');
      if (isJson) {
        const body = req.body as { vector: number[]; top?: number; filter?: SearchFilter };
        if (body.vector.length !== m.info.dim) throw new HttpError(400, 'wrong_dim', `vector has ${body.vector.length} values; this model and index are ${m.info.dim}-d`);
        if (!body.vector.every(Number.isFinite)) throw new HttpError(400, 'bad_vector', 'vector values must be finite numbers');
        const top = body.top ?? 10;
        const hits = await b.search(Float32Array.from(body.vector), top, filterOf(body.filter ?? {}));
        return { top, results: [{ query: 'vector', neighbours: hits[0]!.map(thumb) }] };
      }
      const top = req.query.top === undefined ? 10 : decimalInt('querystring/top', req.query.top, TOP_MIN, TOP_MAX);
      const r = await embedRequest(req);
      const q = new Float32Array(r.vectors.length * m.info.dim);
      r.vectors.forEach((v, i) => q.set(v, i * m.info.dim));
      const hits = await b.search(q, top, req.query.label !== undefined ? { label: req.query.label } : {});
      return { top, results: r.names.map((name, i) => ({ query: name, neighbours: hits[i]!.map(thumb) })) };
    });

    api.get('/v1/thumbnail/:row', {
      schema: { summary: 'a JPEG thumbnail (160 px) of an index row\'s image', params: { type: 'object', properties: { row: { type: 'string', pattern: '^(0|[1-9][0-9]{0,15})$', description: 'a decimal row number (collection ids reach 2^53)' } } }, response: { 400: ERROR, 404: ERROR } },
    }, async (req: FastifyRequest<{ Params: { row: string } }>, reply: FastifyReply) => {
      // A decimal string, not a coerced number: '0x10' or '1e1' is a 400, not row 16 or 10.
      const row = Number(req.params.row);
      if (!Number.isSafeInteger(row)) throw new HttpError(400, 'bad_row', `row ${req.params.row} is beyond 2^53`);
      const path = await backend?.path(row);
      if (path === undefined) throw new HttpError(404, 'no_row', `no index row ${req.params.row}${backend ? ` (the index has ${backend.size})` : ' (no index)'}`);
      let jpg: Buffer;
      try {
        jpg = await sharp(path, { limitInputPixels: maxPixels }).autoOrient().resize(160, 160, { fit: 'cover' }).jpeg({ quality: 80 }).toBuffer();
      } catch (e) {
        throw new HttpError(404, 'image_unavailable', `row ${req.params.row}: ${shownImage(path)} cannot be read: ${(e as Error).message.split('\n')[0]}`);
      }
      return reply.type('image/jpeg').header('cache-control', 'max-age=3600').send(jpg);
    });

    api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });

  void app.register(fastifyStatic, { root: opts.webRoot ?? WEB_ROOT, prefix: '/', index: ['index.html'] });
  void app.register(fastifyStatic, { root: ortWebDist(), prefix: '/ort/', decorateReply: false });
  return app;
}

/** Neighbours a search may ask for. */
const TOP_MIN = 1;
const TOP_MAX = 1000;

/** The 400 of an integer field out of its range or not an integer: it names the field, the range and the value. */
function badInteger(field: string, min: number, max: number, got: unknown): HttpError {
  return new HttpError(400, 'invalid_request', `${field} must be a decimal integer in ${min}…${max}; got ${JSON.stringify(got)}`);
}

/** A query-string integer: decimal digits only (no sign, exponent, hex or leading zero) within min…max. */
function decimalInt(field: string, raw: string, min: number, max: number): number {
  const n = /^(0|[1-9][0-9]{0,15})$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) throw badInteger(field, min, max, raw);
  return n;
}

/**
 * Schema failures as one 400 naming the field: an integer field's failure (wrong type, out of range) also says
 * its valid range, from the field's schema.
 */
function schemaErrorFormatter(errors: readonly { instancePath: string; message?: string; parentSchema?: Record<string, unknown>; data?: unknown }[], dataVar: string): Error {
  const int = errors.find((e) => e.parentSchema?.type === 'integer');
  if (int) {
    const ps = int.parentSchema!;
    return badInteger(`${dataVar}${int.instancePath}`, Number(ps.minimum ?? Number.MIN_SAFE_INTEGER), Number(ps.maximum ?? Number.MAX_SAFE_INTEGER), int.data);
  }
  return new HttpError(400, 'invalid_request', errors.map((e) => `${dataVar}${e.instancePath} ${e.message ?? 'is invalid'}`).join(', '));
}

/**
 * The images of a request: the raw body, or every file of a multipart form. A multipart request is bounded as a
 * whole by `bodyLimit` (its declared length, or the bytes of its files as they arrive), not only file by file.
 */
async function requestImages(req: FastifyRequest, bodyLimit: number): Promise<{ name: string; bytes: Buffer }[]> {
  if (req.isMultipart()) {
    const declared = Number(req.headers['content-length']);
    const tooLarge = (n: number): HttpError => new HttpError(413, 'body_too_large', `the request is ${n} bytes; the limit for a whole request is ${bodyLimit} (--body-limit)`);
    if (declared > bodyLimit) throw tooLarge(declared);
    const out: { name: string; bytes: Buffer }[] = [];
    let total = 0;
    try {
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        if (!/^(image\/|application\/octet-stream$)/.test(part.mimetype)) {
          throw new HttpError(415, 'unsupported_type', `${part.filename || part.fieldname}: type ${part.mimetype} is not an image (send image/* files)`);
        }
        const bytes = await part.toBuffer();
        if (!bytes.length) throw new HttpError(400, 'empty_file', `${part.filename || part.fieldname}: empty file`);
        total += bytes.length;
        if (total > bodyLimit) throw tooLarge(total);
        out.push({ name: part.filename || part.fieldname, bytes });
      }
    } catch (e) {
      if (e instanceof HttpError) throw e;
      const sc = (e as { statusCode?: number }).statusCode;
      if (sc && sc >= 400 && sc < 500) throw e;
      throw new HttpError(400, 'bad_multipart', `malformed multipart/form-data: ${(e as Error).message}`);
    }
    if (!out.length) throw new HttpError(400, 'no_files', 'the multipart form has no file parts');
    return out;
  }
  const body = req.body;
  if (body === undefined || body === null || (Buffer.isBuffer(body) && !body.length)) {
    throw new HttpError(400, 'empty_body', `empty body: ${IMAGE_BODY}`);
  }
  if (!Buffer.isBuffer(body)) {
    throw new HttpError(415, 'unsupported_type', `Content-Type ${req.headers['content-type'] ?? '(none)'} is not accepted here: ${IMAGE_BODY}`);
  }
  return [{ name: 'body', bytes: body }];
}

/** The host name of a Host header: lower case, without the port, an IPv6 literal without its brackets. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  const i = h.lastIndexOf(':');
  return i >= 0 ? h.slice(0, i) : h;
}
