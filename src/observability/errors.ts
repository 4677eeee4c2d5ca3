/**
 * Every error loraplex reports, in one catalogue: a code, its HTTP status, its OpenAI error type and a
 * message template. Messages teach: they name the file, the field and the value, and end with the likely
 * fix as "(hint: …)".
 *
 *   throw createError('ADAPTER_RANK_TOO_HIGH', { file, rank: 64, where: "'r'", maxRank: 16 });
 *
 * To add an error: add one entry to ERROR_CATALOGUE with `define<Params>(status, type, template)`.
 */

/** The `type` field of an OpenAI error body. */
export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'not_found_error'
  | 'authentication_error'
  | 'permission_error'
  | 'rate_limit_error'
  | 'server_error';

export interface ErrorSpec<P> {
  readonly status: number;
  readonly type: OpenAIErrorType;
  readonly message: (params: P) => string;
}

function define<P>(status: number, type: OpenAIErrorType, message: (params: P) => string): ErrorSpec<P> {
  return { status, type, message };
}

/** " (hint: …)" when there is a hint. */
function hint(text: string | undefined): string {
  return text ? ` (hint: ${text})` : '';
}

/** A problem found in one file of an adapter; `field` names the config field or tensor. */
interface AdapterFileProblem {
  file: string;
  field?: string;
  problem: string;
  hint?: string;
}

function fileProblem(p: AdapterFileProblem): string {
  const where = p.field ? `${p.file}: ${p.field}: ` : `${p.file}: `;
  return `${where}${p.problem}${hint(p.hint)}`;
}

export const ERROR_CATALOGUE = {
  ADAPTER_NOT_FOUND: define<{ name: string; where: string; hint?: string }>(
    404,
    'not_found_error',
    (p) => `adapter '${p.name}' not found in ${p.where}${hint(p.hint)}`,
  ),
  /** A file the adapter format needs is absent (adapter_config.json, adapter_model.safetensors). */
  ADAPTER_FILE_MISSING: define<{ dir: string; file: string; hint?: string }>(
    400,
    'invalid_request_error',
    (p) => `adapter directory ${p.dir} has no ${p.file}${hint(p.hint)}`,
  ),
  /** Pickle-based weights can run code when read; they are refused without being opened. */
  ADAPTER_PICKLE_REFUSED: define<{ file: string }>(
    400,
    'invalid_request_error',
    (p) =>
      `${p.file}: refusing to read pickle-based weights (they can run code when loaded)` +
      hint("convert it to safetensors, e.g. with PEFT's save_pretrained(safe_serialization=True)"),
  ),
  ADAPTER_INVALID_CONFIG: define<AdapterFileProblem>(400, 'invalid_request_error', fileProblem),
  ADAPTER_UNSUPPORTED_FEATURE: define<AdapterFileProblem>(400, 'invalid_request_error', fileProblem),
  /** The adapter adapts a module loraplex cannot (embeddings, lm_head, norms, …). */
  ADAPTER_UNSUPPORTED_TARGET: define<{ file: string; field: string; module: string; supported: readonly string[] }>(
    400,
    'invalid_request_error',
    (p) =>
      `${p.file}: ${p.field}: LoRA on module '${p.module}' is not supported; loraplex adapts only ` +
      `${p.supported.join(', ')}` +
      hint('retrain without this module in target_modules, or merge that part into the base model'),
  ),
  ADAPTER_BASE_MISMATCH: define<{ file: string; problem: string; baseModel?: string | null }>(
    400,
    'invalid_request_error',
    (p) =>
      `${p.file}: ${p.problem}` +
      hint(
        p.baseModel
          ? `maybe wrong base model? the adapter was trained on '${p.baseModel}' (base_model_name_or_path)`
          : 'maybe wrong base model?',
      ),
  ),
  ADAPTER_RANK_TOO_HIGH: define<{ file: string; where: string; rank: number; maxRank: number }>(
    400,
    'invalid_request_error',
    (p) =>
      `${p.file}: LoRA rank ${p.rank} (${p.where}) exceeds the server's maximum LoRA rank ${p.maxRank}` +
      hint(`start the server with --max-lora-rank ${p.rank} or more`),
  ),
  ADAPTER_WEIGHTS_INVALID: define<AdapterFileProblem>(400, 'invalid_request_error', fileProblem),
  ADAPTER_TENSOR_MISSING: define<AdapterFileProblem>(400, 'invalid_request_error', fileProblem),
  ADAPTER_TENSOR_SHAPE: define<AdapterFileProblem>(400, 'invalid_request_error', fileProblem),
  /** A tensor the config does not account for (a module it does not target, a name that is not LoRA). */
  ADAPTER_TENSOR_UNEXPECTED: define<AdapterFileProblem>(400, 'invalid_request_error', fileProblem),
  /** vLLM's wording, so clients written for vLLM's /v1/load_lora_adapter recognise it. */
  ADAPTER_EXISTS: define<{ name: string }>(
    400,
    'invalid_request_error',
    (p) =>
      `The lora adapter '${p.name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.`,
  ),
  ADAPTER_NAME_INVALID: define<{ name: string }>(
    400,
    'invalid_request_error',
    (p) =>
      `'${p.name}' is not a valid adapter name` +
      hint('use letters, digits, ".", "_" and "-" (at most 128), starting with a letter or digit'),
  ),
  /** lora_path of the admin API must lie inside an allowed root; nothing outside is opened. */
  ADAPTER_PATH_REFUSED: define<{ path: string }>(
    400,
    'invalid_request_error',
    (p) =>
      `lora_path '${p.path}' is not inside a directory this server loads adapters from` +
      hint('the server operator sets those with --allowed-lora-root'),
  ),
  /** A file of an adapter resolves (through a symlink) outside its root: refused, never opened. */
  ADAPTER_FILE_OUTSIDE: define<{ file: string; root: string }>(
    400,
    'invalid_request_error',
    (p) =>
      `${p.file}: resolves outside ${p.root} (a symlink leading out); it was not opened` +
      hint('copy the file into the adapter directory instead of linking to it'),
  ),
  /**
   * An adapter load did not finish within --adapter-load-timeout (a hung mount, a huge file). 504: the
   * request may be fine; the server gave up waiting on its storage, as a gateway gives up on an upstream.
   */
  ADAPTER_LOAD_TIMEOUT: define<{ name: string; seconds: number }>(
    504,
    'server_error',
    (p) =>
      `adapter '${p.name}': loading did not finish within ${p.seconds} s and was abandoned` +
      hint('check the storage the adapter lives on, or raise --adapter-load-timeout'),
  ),
  /** An adapter's work failed in the engine (a kernel rejected it): that version is disabled until replaced. */
  ADAPTER_BROKEN: define<{ name: string; reason: string }>(
    400,
    'invalid_request_error',
    (p) =>
      `adapter '${p.name}' failed in the engine and is disabled: ${p.reason}` +
      hint('fix the adapter and load it again (load_inplace, or a changed folder in the store)'),
  ),
  MODEL_NOT_FOUND: define<{ name: string; available: string }>(
    404,
    'not_found_error',
    (p) => `The model '${p.name}' does not exist (served: ${p.available}); 'model' names the base or an adapter`,
  ),
  REQUEST_INVALID: define<{ message: string }>(400, 'invalid_request_error', (p) => p.message),
  SERVER_OVERLOADED: define<{ waiting: number; retryAfter: number }>(
    429,
    'rate_limit_error',
    (p) => `the server's waiting queue is full (${p.waiting} requests); retry in ${p.retryAfter} s`,
  ),
  SERVER_NOT_READY: define<{ what: string }>(503, 'server_error', (p) => `the server is not ready yet: ${p.what}`),
  SERVER_DRAINING: define<Record<string, never>>(
    503,
    'server_error',
    () => 'the server is shutting down and takes no new requests; retry on another replica',
  ),
  /** The engine thread died or stopped stepping: nothing can be served until the process is restarted. */
  ENGINE_FAILED: define<{ reason: string }>(
    503,
    'server_error',
    (p) => `the inference engine failed and this server cannot serve requests: ${p.reason}; it will be restarted`,
  ),
  REQUEST_TOO_LARGE: define<{ message: string }>(413, 'invalid_request_error', (p) => p.message),
  UNSUPPORTED_MEDIA_TYPE: define<{ contentType: string }>(
    415,
    'invalid_request_error',
    (p) => `unsupported content type '${p.contentType}'; send the body as JSON with 'content-type: application/json'`,
  ),
  PARAMETER_UNSUPPORTED: define<{ param: string }>(
    400,
    'invalid_request_error',
    (p) => `'${p.param}' is not supported by this server; remove it from the request`,
  ),
  INTERNAL_ERROR: define<{ message: string }>(500, 'server_error', (p) => p.message),
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
export type ErrorParams<C extends ErrorCode> = (typeof ERROR_CATALOGUE)[C] extends ErrorSpec<infer P> ? P : never;

/** The body OpenAI-compatible servers answer with. */
export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string };
}

export class LoraplexError extends Error {
  override readonly name = 'LoraplexError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status: number,
    readonly type: OpenAIErrorType,
    /** The request field at fault (OpenAI's `param`), when there is one. */
    readonly param?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  toOpenAIError(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param ?? null, code: this.code } };
  }
}

export function createError<C extends ErrorCode>(
  code: C,
  params: ErrorParams<C>,
  options: { param?: string; cause?: unknown } = {},
): LoraplexError {
  const spec = ERROR_CATALOGUE[code] as ErrorSpec<ErrorParams<C>>;
  return new LoraplexError(code, spec.message(params), spec.status, spec.type, options.param, { cause: options.cause });
}

export function isLoraplexError(e: unknown, code?: ErrorCode): e is LoraplexError {
  return e instanceof LoraplexError && (code === undefined || e.code === code);
}

/** An error as plain data, to cross a worker-thread boundary. */
export interface SerializedError {
  code: string;
  message: string;
  status: number;
  type: OpenAIErrorType;
  param?: string;
}

export function serializeError(e: unknown): SerializedError {
  if (isLoraplexError(e)) return { code: e.code, message: e.message, status: e.status, type: e.type, param: e.param };
  const err = e as Error;
  // RangeError is what the engine throws for a request that does not fit (length, vocabulary): a bad request.
  if (err instanceof RangeError)
    return { code: 'REQUEST_INVALID', message: err.message, status: 400, type: 'invalid_request_error' };
  return { code: 'INTERNAL_ERROR', message: err?.message ?? String(e), status: 500, type: 'server_error' };
}

export function deserializeError(s: SerializedError): LoraplexError {
  const code = (s.code in ERROR_CATALOGUE ? s.code : 'INTERNAL_ERROR') as ErrorCode;
  return new LoraplexError(code, s.message, s.status, s.type, s.param);
}
