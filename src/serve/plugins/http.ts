// What every request goes through, whichever route answers it: the Host check, the body deadline, the security
// headers, the image body parser, and the errors as `{error, message}` with their status.
import { isIP } from 'node:net';
import fp from 'fastify-plugin';
import { HttpError } from '../errors.js';
import type { ServeRuntime } from './runtime.js';

export interface HttpOptions {
  runtime: ServeRuntime;
  /** Host names answered besides IP addresses and localhost (see ServeOptions.allowedHosts). */
  allowedHosts: readonly string[];
  /** Longest time a request's body may take to arrive, ms. */
  requestTimeoutMs: number;
}

export const httpPlugin = fp<HttpOptions>(
  async (app, { runtime, allowedHosts, requestTimeoutMs }) => {
    // DNS rebinding: a foreign page whose name resolves to this address sends its own name as Host.
    const hosts = new Set(['localhost', ...allowedHosts.map((h) => h.toLowerCase())]);
    app.addHook('onRequest', async (req) => {
      const host = hostName(req.headers.host ?? '');
      if (isIP(host) || hosts.has(host) || host.endsWith('.localhost')) return;
      throw new HttpError(
        403,
        'forbidden_host',
        `Host '${req.headers.host ?? ''}' is not served here: use an IP address ` +
          `or localhost, or start moco serve with --allowed-hosts ${host || 'NAME'}`,
      );
    });

    // A body that has not arrived by the deadline is answered 408 and its connection closed (Node's own
    // requestTimeout did not fire for a request whose headers were already handed to the app).
    app.addHook('onRequest', (req, reply, done) => {
      if (req.raw.complete) return done();
      const timer = setTimeout(() => {
        if (req.raw.complete || reply.sent) return;
        reply.raw.once('finish', () => req.raw.socket?.destroy());
        const message = `the request body did not arrive within ${requestTimeoutMs / 1000} s (--request-timeout)`;
        void reply.code(408).header('connection', 'close').send({ error: 'request_timeout', message });
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
      if (runtime.phase === 'draining') reply.header('connection', 'close');
    });

    app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
      if (err instanceof HttpError) {
        return reply.code(err.status).headers(err.headers).send({ error: err.code, message: err.message });
      }
      const sc = err.statusCode;
      if (err.validation) return reply.code(400).send({ error: 'invalid_request', message: err.message });
      if (sc && sc >= 400 && sc < 500) {
        return reply.code(sc).send({ error: (err.code ?? 'bad_request').toLowerCase(), message: err.message });
      }
      if (sc === 503) {
        return reply.code(503).header('retry-after', '1').send({ error: 'unavailable', message: err.message });
      }
      req.log.error(err);
      return reply.code(500).send({ error: 'internal', message: err.message });
    });
    app.setNotFoundHandler((req, reply) => {
      const message = `no route ${req.method} ${req.url.split('?')[0]}; the API is described at /openapi.json`;
      void reply.code(404).send({ error: 'not_found', message });
    });

    // Image bodies arrive whole (bounded by bodyLimit); text/plain and JSON keep fastify's parsers.
    const image = /^(image\/[\w.+-]+|application\/octet-stream)$/;
    app.addContentTypeParser(image, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  },
  { name: 'moco-http', fastify: '5.x' },
);

/** The host name of a Host header: lower case, without the port, an IPv6 literal without its brackets. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  const i = h.lastIndexOf(':');
  return i >= 0 ? h.slice(0, i) : h;
}
