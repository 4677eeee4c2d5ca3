/**
 * What every route module reads: the server's context and the admin routes' settings. Its own file so the
 * route modules and `buildApp` (which registers them) depend on it, not on each other.
 */
import type { AsyncEngine } from '../engine/async-engine.ts';
import type { RequestLog } from '../observability/request-trace.ts';
import type { TextCodec } from '../tokenizer/text-codec.ts';
import type { Lifecycle } from './lifecycle.ts';

export interface AdminConfig {
  /** Directories lora_path may point into. */
  allowedRoots: string[];
  /** When set, admin routes need `Authorization: Bearer <adminKey>` (and not the API key); see auth.ts. */
  adminKey?: string;
}

export interface ServerContext {
  /** Set once the engine is up: until then (lifecycle.ready false) every route but liveness and metrics answers 503. */
  engine: AsyncEngine;
  codec: TextCodec;
  /** The name clients use for the base model. */
  baseModel: string;
  startedAt: number;
  /** When set, every route but the probes and metrics needs `Authorization: Bearer <apiKey>` (auth.ts). */
  apiKey?: string;
  /** The runtime adapter endpoints, when enabled. */
  admin?: AdminConfig;
  /** Request limits (defaults: DEFAULT_MAX_BODY_BYTES, and PROMPT_BYTES_PER_TOKEN × the context length). */
  limits?: { maxBodyBytes?: number; maxPromptBytes?: number };
  /** Where each generation request (and each failed one) writes its one line; none when unset. */
  requestLog?: RequestLog;
  /** Serve the web dashboard at / (src/server/ui/). */
  ui?: boolean;
  /** Origins browsers may call the API from (--allowed-origins; '*': any); empty or unset: no CORS headers. */
  allowedOrigins?: string[];
  /** Draining (after SIGTERM): readiness fails and new requests get 503 while running ones finish. */
  lifecycle: Lifecycle;
}
