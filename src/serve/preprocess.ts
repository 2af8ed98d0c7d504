// Request images → model input through the one evaluation transform (data/eval-transform.ts); what it refuses
// becomes the HTTP answer: 413 for too many pixels, 422 for bytes that are not a decodable image.
import {
  ImageInputError,
  preprocessImage as toInput,
  type DecodeLimits,
  type Preprocessing,
} from '../data/eval-transform.js';
import { HttpError } from './errors.js';

export { sourceBox, type DecodeLimits, type Preprocessing } from '../data/eval-transform.js';

/** {@link toInput} on a request's bytes; throws HttpError 413 / 422. */
export async function preprocessImage(
  bytes: Uint8Array,
  p: Preprocessing,
  out: Float32Array,
  at: number,
  limits: DecodeLimits = {},
): Promise<void> {
  try {
    await toInput(bytes, p, out, at, limits);
  } catch (e) {
    if (e instanceof ImageInputError) throw new HttpError(e.code === 'too_many_pixels' ? 413 : 422, e.code, e.message);
    throw e;
  }
}
