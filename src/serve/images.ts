// The images of a request (a raw image body or the files of a multipart form) and their embeddings, as
// /v1/embed and /v1/search take them.
import type { FastifyRequest } from 'fastify';
import { HttpError, unavailable } from './errors.js';
import { preprocessImage } from './preprocess.js';
import type { ServeRuntime } from './plugins/runtime.js';

/** What an image-taking route accepts, for its description and its 4xx messages. */
export const IMAGE_BODY =
  'one image as the raw body (Content-Type image/* or application/octet-stream) or ' +
  'multipart/form-data with one or more image files';

/** Embeds the images of a request (raw body or multipart files); names are the multipart parts' file names. */
export async function embedRequest(
  runtime: ServeRuntime,
  req: FastifyRequest,
): Promise<{ names: string[]; vectors: Float32Array[] }> {
  const { model: m, batcher: b } = runtime.ready();
  const { bodyBytes, pixels } = runtime.limits;
  const images = await requestImages(req, bodyBytes);
  if (images.length + b.waiting > b.maxQueue) {
    throw unavailable(`embedding queue is full (${b.waiting} of ${b.maxQueue} images waiting); retry shortly`, 1);
  }
  const s = m.info.preprocessing.size;
  const inputs = await Promise.all(
    images.map(async (im) => {
      const x = new Float32Array(3 * s * s);
      try {
        await preprocessImage(im.bytes, m.info.preprocessing, x, 0, { maxPixels: pixels });
      } catch (e) {
        if (!(e instanceof HttpError) || images.length <= 1) throw e;
        throw new HttpError(e.status, e.code, `${im.name}: ${e.message}`);
      }
      return x;
    }),
  );
  return { names: images.map((i) => i.name), vectors: await b.submit(inputs) };
}

/**
 * The images of a request: the raw body, or every file of a multipart form. A multipart request is bounded as a
 * whole by `bodyLimit` (its declared length, or the bytes of its files as they arrive), not only file by file.
 */
async function requestImages(req: FastifyRequest, bodyLimit: number): Promise<{ name: string; bytes: Buffer }[]> {
  if (req.isMultipart()) {
    const declared = Number(req.headers['content-length']);
    const tooLarge = (n: number): HttpError =>
      new HttpError(
        413,
        'body_too_large',
        `the request is ${n} bytes; the limit for a whole request is ${bodyLimit} (--body-limit)`,
      );
    if (declared > bodyLimit) throw tooLarge(declared);
    const out: { name: string; bytes: Buffer }[] = [];
    let total = 0;
    try {
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        const name = part.filename || part.fieldname;
        if (!/^(image\/|application\/octet-stream$)/.test(part.mimetype)) {
          const message = `${name}: type ${part.mimetype} is not an image (send image/* files)`;
          throw new HttpError(415, 'unsupported_type', message);
        }
        const bytes = await part.toBuffer();
        if (!bytes.length) throw new HttpError(400, 'empty_file', `${name}: empty file`);
        total += bytes.length;
        if (total > bodyLimit) throw tooLarge(total);
        out.push({ name, bytes });
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
    const type = req.headers['content-type'] ?? '(none)';
    throw new HttpError(415, 'unsupported_type', `Content-Type ${type} is not accepted here: ${IMAGE_BODY}`);
  }
  return [{ name: 'body', bytes: body }];
}
