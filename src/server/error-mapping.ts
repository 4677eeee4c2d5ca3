/**
 * Any error a route or fastify itself raises → a catalogue error with the right status: a client's mistake
 * (bad JSON, empty body, wrong content type, a body over the limit, a schema violation) is a 4xx, never a
 * 500 that SDKs would retry. Messages never quote the body; anything echoed is truncated.
 */
import { createError, isLoraplexError, type LoraplexError } from '../observability/errors.ts';

/** At most this many characters of anything a client sent are echoed back. */
export const ECHO_LIMIT = 128;

export function truncated(text: string, limit = ECHO_LIMIT): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}…`;
}

interface FastifyishError extends Error {
  code?: string;
  statusCode?: number;
  validation?: { instancePath?: string }[];
  validationContext?: string;
}

export function toLoraplexError(error: unknown, request: { contentType?: string; bodyLimit: number }): LoraplexError {
  if (isLoraplexError(error)) return error;
  const err = error as FastifyishError;
  if (err.validation) {
    const param = err.validation[0]?.instancePath?.replace(/^\//, '').split('/')[0] || undefined;
    return createError('REQUEST_INVALID', { message: truncated(err.message, 512) }, { param });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return createError('REQUEST_TOO_LARGE', {
        message: `the request body is larger than this server's limit of ${request.bodyLimit} bytes (--max-body-bytes)`,
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return createError('UNSUPPORTED_MEDIA_TYPE', { contentType: truncated(request.contentType ?? 'none', 64) });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return createError('REQUEST_INVALID', { message: 'the request body is empty; send a JSON object' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return createError('REQUEST_INVALID', { message: 'the request body is not valid JSON' });
  }
  // JSON.parse's SyntaxError (bad JSON, NaN or Infinity literals) and prototype-poisoning refusals.
  if (err instanceof SyntaxError || err.statusCode === 400) {
    return createError('REQUEST_INVALID', { message: 'the request body is not valid JSON' });
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return createError('REQUEST_INVALID', { message: truncated(err.message, 512) });
  }
  // The engine throws RangeError for a request that does not fit (length, vocabulary): a bad request.
  if (err instanceof RangeError) return createError('REQUEST_INVALID', { message: err.message });
  return createError('INTERNAL_ERROR', { message: err?.message ?? String(error) }, { cause: error });
}
