/**
 * Runtime adapter management, shaped like vLLM's (enabled by --enable-lora-runtime-updates, as vLLM's
 * VLLM_ALLOW_RUNTIME_LORA_UPDATING):
 *   POST /v1/load_lora_adapter   {lora_name, lora_path, load_inplace?}  → 200 "Success: LoRA adapter '…' added successfully."
 *   POST /v1/unload_lora_adapter {lora_name}                            → 200 "Success: LoRA adapter '…' removed successfully."
 * plus POST /v1/rescan_lora_adapters (rescan the store now) and
 *   POST /v1/pin_lora_adapter    {lora_name, pinned}                    → 200 {lora_name, pinned, cache_tier}
 * (a pinned adapter's current version stays in the host tier, never evicted by the LRU). `lora_path` must lie inside an allowed root:
 * it is checked as written, then again after symlinks are resolved, before anything in it is opened.
 * Their key (the admin key, or else the API key) is checked per route by auth.ts.
 */
import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { isInside } from '../adapters/adapter-files.ts';
import { createError } from '../observability/errors.ts';
import type { AdminConfig, ServerContext } from './context.ts';
import { truncated } from './error-mapping.ts';

const loadSchema = {
  body: {
    type: 'object',
    required: ['lora_name', 'lora_path'],
    properties: {
      lora_name: { type: 'string', minLength: 1, maxLength: 256 },
      lora_path: { type: 'string', minLength: 1, maxLength: 4096 },
      load_inplace: { type: 'boolean' },
    },
  },
};

const unloadSchema = {
  body: {
    type: 'object',
    required: ['lora_name'],
    properties: { lora_name: { type: 'string', minLength: 1, maxLength: 256 }, lora_int_id: { type: 'integer' } },
  },
};

const pinSchema = {
  body: {
    type: 'object',
    required: ['lora_name', 'pinned'],
    properties: { lora_name: { type: 'string', minLength: 1, maxLength: 256 }, pinned: { type: 'boolean' } },
  },
};

export function registerAdminRoutes(app: FastifyInstance, ctx: ServerContext, admin: AdminConfig) {
  app.post<{ Body: { lora_name: string; lora_path: string; load_inplace?: boolean } }>(
    '/v1/load_lora_adapter',
    { schema: loadSchema },
    async (req, reply) => {
      const { lora_name: name, lora_path: path, load_inplace: inplace = false } = req.body;
      if (name === ctx.baseModel) {
        throw createError(
          'REQUEST_INVALID',
          { message: `'${truncated(name)}' is the base model's name; give the adapter another lora_name` },
          { param: 'lora_name' },
        );
      }
      const { dir, root } = await allowedPath(path, admin.allowedRoots);
      await ctx.engine.admin({ op: 'load', name, dir, root, inplace });
      return reply.type('text/plain').send(`Success: LoRA adapter '${name}' added successfully.`);
    },
  );

  app.post<{ Body: { lora_name: string } }>('/v1/unload_lora_adapter', { schema: unloadSchema }, async (req, reply) => {
    const name = req.body.lora_name;
    await ctx.engine.admin({ op: 'unload', name });
    return reply.type('text/plain').send(`Success: LoRA adapter '${name}' removed successfully.`);
  });

  app.post<{ Body: { lora_name: string; pinned: boolean } }>(
    '/v1/pin_lora_adapter',
    { schema: pinSchema },
    async (req) => {
      const result = await ctx.engine.admin({ op: 'pin', name: req.body.lora_name, pinned: req.body.pinned });
      if (result.op !== 'pin') throw new Error(`the engine answered a pin with '${result.op}'`);
      return { lora_name: result.info.name, pinned: result.info.pinned, cache_tier: result.info.tier };
    },
  );

  app.post('/v1/rescan_lora_adapters', async () => {
    const result = await ctx.engine.admin({ op: 'rescan' });
    return result;
  });
}

/**
 * The real path of `path` and of the allowed root it lies in (also after resolving symlinks); else 400. Every
 * file of the adapter must then stay inside that root.
 */
export async function allowedPath(path: string, roots: string[]): Promise<{ dir: string; root: string }> {
  // The roots are server paths: the message names the flag, never them.
  const refuse = () => createError('ADAPTER_PATH_REFUSED', { path: truncated(path) }, { param: 'lora_path' });
  if (path.includes('\0')) throw refuse();
  const lexical = resolve(path);
  const lexicalRoot = roots.find((r) => isInside(lexical, resolve(r)));
  if (!lexicalRoot) throw refuse();
  const real = await realpath(lexical).catch(() => null);
  if (!real) {
    throw createError(
      'ADAPTER_NOT_FOUND',
      { name: truncated(path), where: 'the file system (no such directory)' },
      { param: 'lora_path' },
    );
  }
  const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => null)));
  const root = realRoots.find((r) => r !== null && isInside(real, r));
  if (!root) throw refuse();
  return { dir: real, root };
}
