/**
 * Virtual adapters (compose.ts): a request's weighted combination, recorded by key, built into the host tier
 * once its components are in memory, and failed when one of them fails or the build is refused.
 *
 * Apart from AdapterManager because it is one idea on top of the tiers, not a tier: it owns only the records
 * and reads (and drives) the manager's state through CompositionContext. Keys and versions are the manager's.
 */
import type { PackedAdapter } from '../../kernels/types.ts';
import { createError, type LoraplexError } from '../../observability/errors.ts';
import { type AdapterPart, checkParts, composePacked, compositionKey, type ResolvedPart } from '../compose.ts';
import type { HostCache } from './host-cache.ts';
import type { SlotTable } from './slot-table.ts';

/** A component at its current version; the name is kept for messages. */
export interface Component extends ResolvedPart {
  name: string;
}

/** What the manager lends its combinations: the tiers, the failures, and its residency rules. */
export interface CompositionContext {
  readonly slots: SlotTable;
  readonly host: HostCache;
  readonly retained: ReadonlyMap<string, number>;
  readonly failures: Map<string, LoraplexError>;
  /** Largest total rank of a combination's module (--max-lora-rank). */
  readonly maxLoraRank: number;
  /** The served name's current `name@version`; undefined when the name is not served. */
  currentKey(name: string): string | undefined;
  /** The weights in memory (handed over or in the host tier), if any. */
  packed(key: string): PackedAdapter | null | undefined;
  inMemory(key: string): boolean;
  isHostPinned(key: string): boolean;
  ensureResident(key: string, needMemory: boolean): void;
  retire(key: string): void;
  /** The manager's revision moves (list() may answer differently). */
  changed(): void;
  failed(key: string, error: LoraplexError): void;
}

export class Compositions {
  /** Key → its components, kept while the key may be in use or resident. */
  private readonly records = new Map<string, Component[]>();

  constructor(private readonly ctx: CompositionContext) {}

  has(key: string): boolean {
    return this.records.has(key);
  }

  /** A combination's components; undefined for a plain adapter's key. */
  partsOf(key: string): readonly Component[] | undefined {
    return this.records.get(key);
  }

  /** AdapterManager.resolveComposition (see there). */
  resolve(parts: readonly AdapterPart[]): string {
    const { failures } = this.ctx;
    checkParts(parts);
    const resolved = parts.map((p, i): Component => {
      const param = `lora[${i}].name`;
      const key = this.ctx.currentKey(p.name);
      if (key === undefined)
        throw createError('REQUEST_INVALID', { message: `'${param}': no adapter '${p.name}' is served` }, { param });
      const failure = failures.get(key);
      if (failure)
        throw createError('REQUEST_INVALID', { message: `adapter '${p.name}': ${failure.message}` }, { param });
      return { key, weight: p.weight, name: p.name };
    });
    if (resolved.length === 1 && resolved[0].weight === 1) return resolved[0].key;
    const key = compositionKey(resolved);
    const failure = failures.get(key);
    if (failure) throw failure;
    if (!this.records.has(key)) {
      this.prune();
      this.records.set(key, resolved);
    }
    this.ensure(key); // resident components: a DoRA or rank refusal is thrown now, as a 400
    const now = failures.get(key);
    if (now) throw now;
    return key;
  }

  /**
   * Builds a virtual adapter into the host tier once every component is in memory (loading those that are
   * not: a slot copy cannot be read back); a refusal (DoRA, rank) or a failed component fails it.
   */
  ensure(key: string) {
    const { ctx } = this;
    if (ctx.slots.has(key) || ctx.inMemory(key) || ctx.failures.has(key)) return;
    const parts = this.records.get(key)!;
    const broken = parts.findIndex((p) => ctx.failures.has(p.key));
    if (broken >= 0) {
      const message = `adapter '${parts[broken].name}' failed to load: ${ctx.failures.get(parts[broken].key)!.message}`;
      return this.fail(key, createError('REQUEST_INVALID', { message }, { param: 'lora' }));
    }
    const packed = parts.map((p) => ctx.packed(p.key));
    if (packed.some((p) => p === null || p === undefined)) {
      for (const p of parts) ctx.ensureResident(p.key, true);
      return;
    }
    try {
      const components = parts.map((p, i) => ({ packed: packed[i]!, weight: p.weight, name: p.name }));
      const built = composePacked(components, ctx.maxLoraRank);
      ctx.changed();
      const keep = (k: string) => ctx.isHostPinned(k) || parts.some((p) => p.key === k);
      ctx.host.makeRoom(1, keep);
      ctx.host.put(key, built, keep);
    } catch (e) {
      this.fail(key, e as LoraplexError);
    }
  }

  /** The version `key` is retired: its record goes, and so does every unretained combination using it. */
  forget(key: string) {
    this.records.delete(key);
    for (const [k, parts] of this.records) {
      if (!this.ctx.retained.has(k) && parts.some((p) => p.key === key)) this.ctx.retire(k);
    }
  }

  private fail(key: string, error: LoraplexError) {
    this.ctx.changed();
    this.ctx.failures.set(key, error);
    this.ctx.failed(key, error);
  }

  /** Forgets combinations nothing uses or holds, so their records do not grow without bound. */
  private prune() {
    const { ctx } = this;
    if (this.records.size < 4 * ctx.host.capacity) return;
    for (const key of [...this.records.keys()]) {
      if (!ctx.retained.has(key) && !ctx.slots.has(key) && !ctx.inMemory(key)) ctx.retire(key);
    }
  }
}
