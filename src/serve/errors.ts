// Client errors with an HTTP status: everything a request can get wrong maps to one of these, so bad input is a
// clear 4xx and never a 500.

/** An error that the server answers with `status` and `{error, message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** 503 with Retry-After (seconds): the server is loading, draining or its queue is full. */
export function unavailable(message: string, retryAfterS = 1): HttpError {
  return new HttpError(503, 'unavailable', message, { 'retry-after': String(retryAfterS) });
}
