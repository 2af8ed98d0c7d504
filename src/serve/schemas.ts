// The JSON schemas that several routes share, registered once with `addSchema` and referenced by `$ref` (the
// OpenAPI document lists them under components.schemas by their $id), and how schema failures read as a 400.
import fp from 'fastify-plugin';
import { HttpError } from './errors.js';

/** `{ $ref }` to a shared schema by its $id. */
export function ref(id: SharedSchemaId): { $ref: string } {
  return { $ref: `${id}#` };
}

/** Every error body: `{error, message}`. */
const ERROR = {
  $id: 'Error',
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
} as const;

/** An embedding. */
const VECTOR = { $id: 'Vector', type: 'array', items: { type: 'number' } } as const;

/** One neighbour of a search. */
const HIT = {
  $id: 'SearchHit',
  type: 'object',
  properties: {
    row: { type: 'integer' },
    path: { type: 'string' },
    label: { type: ['string', 'null'] },
    score: { type: 'number' },
    thumbnail: { type: 'string' },
  },
} as const;

/** A search's filter; unknown fields are refused, not ignored. */
const FILTER = {
  $id: 'SearchFilter',
  type: 'object',
  additionalProperties: false,
  description: "every given field must match; label is the name of the image's folder",
  properties: {
    label: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 1000 }] },
    pathPrefix: { type: 'string' },
  },
} as const;

const SHARED = [ERROR, VECTOR, HIT, FILTER];

/** Response schemas of error statuses: the shared Error body for each. */
export function errors(...statuses: number[]): Record<number, { $ref: string }> {
  return Object.fromEntries(statuses.map((s) => [s, ref('Error')]));
}

/** The $id of a shared schema. */
export type SharedSchemaId = (typeof SHARED)[number]['$id'];

/** Adds the shared schemas to the instance, for every route registered after it. */
export const sharedSchemas = fp(
  async (app) => {
    for (const s of SHARED) app.addSchema(s);
  },
  { name: 'moco-schemas', fastify: '5.x' },
);

/** The 400 of an integer field out of its range or not an integer: it names the field, the range and the value. */
export function badInteger(field: string, min: number, max: number, got: unknown): HttpError {
  const message = `${field} must be a decimal integer in ${min}…${max}; got ${JSON.stringify(got)}`;
  return new HttpError(400, 'invalid_request', message);
}

/** A query-string integer: decimal digits only (no sign, exponent, hex or leading zero) within min…max. */
export function decimalInt(field: string, raw: string, min: number, max: number): number {
  const n = /^(0|[1-9][0-9]{0,15})$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) throw badInteger(field, min, max, raw);
  return n;
}

/** What fastify's `schemaErrorFormatter` is given of each failure (ajv's `verbose` adds the schema and value). */
interface SchemaFailure {
  instancePath: string;
  message?: string;
  parentSchema?: Record<string, unknown>;
  data?: unknown;
}

/**
 * Schema failures as one 400 naming the field: an integer field's failure (wrong type, out of range) also says
 * its valid range, from the field's schema.
 */
export function schemaErrorFormatter(errors: readonly SchemaFailure[], dataVar: string): Error {
  const int = errors.find((e) => e.parentSchema?.type === 'integer');
  if (int) {
    const ps = int.parentSchema!;
    const min = Number(ps.minimum ?? Number.MIN_SAFE_INTEGER),
      max = Number(ps.maximum ?? Number.MAX_SAFE_INTEGER);
    return badInteger(`${dataVar}${int.instancePath}`, min, max, int.data);
  }
  const message = errors.map((e) => `${dataVar}${e.instancePath} ${e.message ?? 'is invalid'}`).join(', ');
  return new HttpError(400, 'invalid_request', message);
}
