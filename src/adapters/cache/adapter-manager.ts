/**
 * The adapter tiers in one place: the catalogue (every servable name and its current version, from the
 * command line, the store or the admin API) → the host cache (packed weights in memory, LRU) → the kernel
 * slots (what a batch can mix, LRU, pinned while running).
 *
 * Lives on the engine thread. Loads run on an AdapterLoader (its own thread in the server) and never block
 * a step: a sequence whose adapter is not resident simply waits in the queue. Concurrent requests for one
 * cold adapter share one load. Everything is keyed by `name@version`: replacing an adapter makes a new
 * version, sequences keep the version they were admitted with, and an old version's weights are dropped
 * once no sequence uses them. Weighted combinations (virtual adapters) are kept in compositions.ts and served
 * through these tiers like any adapter.
 */
import type { LoraDtype, PackedAdapter } from '../../kernels/types.ts';
import { createError, type LoraplexError } from '../../observability/errors.ts';
import type { ServeLog } from '../../observability/log.ts';
import { defaultAdapterLog } from '../../observability/thread-log.ts';
import type { AdapterPart } from '../compose.ts';
import type { AdapterLoader } from '../loader/adapter-loader.ts';
import type { AdapterSummary } from '../loader/load-packed.ts';
import { ADAPTER_NAME } from '../store/local-dir-store.ts';
import { Compositions } from './compositions.ts';
import { HostCache } from './host-cache.ts';
import { type SlotBackend, type SlotContents, SlotTable } from './slot-table.ts';

/** Where a name came from: --adapter, the store's listing, /v1/load_lora_adapter, or handed over in memory. */
export type AdapterOrigin = 'static' | 'store' | 'api' | 'memory';
/** The fastest tier that holds an adapter's current version. */
export type AdapterTier = 'slot' | 'host' | 'loading' | 'disk' | 'failed';

export interface AdapterInfo {
  name: string;
  version: number;
  origin: AdapterOrigin;
  tier: AdapterTier;
  /** Known once loaded (null before the first load). */
  rank: number | null;
  targets: string[] | null;
  sizeBytes: number | null;
  /** Why the last load failed, when tier is 'failed'. */
  error: string | null;
  /** What the last load found worth knowing but not fatal (ignored config fields, unused patterns). */
  warnings: string[];
  /** Kept in the host tier whatever the LRU says (pin()); follows the name's new versions. */
  pinned: boolean;
  /**
   * Where the current version's files are (null: handed over in memory): the server reads a tokenizer the
   * adapter ships from there. Server paths: never shown to clients.
   */
  files?: { dir: string; root?: string } | null;
}

export interface AdapterCacheStats {
  slotsUsed: number;
  slotsTotal: number;
  hostUsed: number;
  hostTotal: number;
  loading: number;
}

/** One adapter directory as a store lists it; a changed fingerprint means new weights. */
export interface StoreEntry {
  name: string;
  dir: string;
  fingerprint: string;
  /** The store's root: every file of the adapter must lie inside it (symlinks resolved). */
  root?: string;
}

export interface AdapterManagerOptions {
  backend: SlotBackend;
  numModules: number;
  loraDtype: LoraDtype;
  maxLoras: number;
  maxCpuLoras: number;
  /** Null: only adapters handed over in memory (addResident) are served. */
  loader: AdapterLoader | null;
  /** Largest total rank of a combination's module (--max-lora-rank; default 64). */
  maxLoraRank?: number;
  /** Where load warnings go, once per adapter version (default: the process's structured log on stderr). */
  log?: Pick<ServeLog, 'warn'>;
  /** What slots hold besides LoRA factors (kinds/edge-slots.ts). */
  slotContents?: SlotContents;
  /** The host tier's byte budget (HostCache.capacityBytes: saved embeddings weigh more than LoRA factors). */
  maxCpuLoraBytes?: number;
}

/** What the manager tells its owner (the engine) as loads finish. */
export interface AdapterEvents {
  /** A load finished: waiting sequences may be runnable now. */
  ready(key: string): void;
  failed(key: string, error: LoraplexError): void;
  loadTimed(name: string, seconds: number, ok: boolean): void;
}

interface CatalogEntry {
  name: string;
  version: number;
  origin: AdapterOrigin;
  dir: string | null;
  fingerprint: string | null;
  root?: string;
}

export const adapterKey = (name: string, version: number) => `${name}@${version}`;
const nameOf = (key: string) => key.slice(0, key.lastIndexOf('@'));

export class AdapterManager {
  readonly slots: SlotTable;
  private readonly host: HostCache;
  private readonly catalog = new Map<string, CatalogEntry>();
  private readonly lastVersion = new Map<string, number>();
  private readonly retained = new Map<string, number>();
  /** Adapters handed over in memory: always resident, outside the host cache's capacity. */
  private readonly resident = new Map<string, PackedAdapter>();
  /** Where each live version's files are, so a version still in use can be reloaded after eviction. */
  private readonly sources = new Map<string, { dir: string; root?: string }>();
  private readonly loading = new Map<string, Promise<void>>();
  /** Loads waiting for host-cache room (every entry pinned), in request order. */
  private readonly deferred = new Set<string>();
  private readonly failures = new Map<string, LoraplexError>();
  private readonly summaries = new Map<string, AdapterSummary>();
  /** Store adapters unloaded on request: name → the fingerprint unloaded; rescans skip them until it changes. */
  private readonly unloaded = new Map<string, string | null>();
  /** Names whose current version stays in the host tier (pin()). */
  private readonly pinned = new Set<string>();
  /** Virtual adapters (compose.ts), built on these tiers. */
  private readonly compositions: Compositions;
  events: AdapterEvents = { ready() {}, failed() {}, loadTimed() {} };
  private changes = 0;

  constructor(private readonly opts: AdapterManagerOptions) {
    if (opts.maxCpuLoras < opts.maxLoras) {
      throw new RangeError(`max CPU LoRAs (${opts.maxCpuLoras}) must be at least max LoRAs (${opts.maxLoras})`);
    }
    // A slot reused while its sequence still needs the adapter (waiting, preempted) must leave a host copy.
    const displaced = (key: string) => {
      if (this.isHostPinned(key)) this.ensureResident(key);
    };
    this.slots = new SlotTable(
      opts.backend,
      opts.maxLoras,
      opts.numModules,
      opts.loraDtype,
      displaced,
      opts.slotContents,
    );
    this.host = new HostCache(opts.maxCpuLoras, opts.maxCpuLoraBytes);
    this.compositions = new Compositions({
      slots: this.slots,
      host: this.host,
      retained: this.retained,
      failures: this.failures,
      maxLoraRank: opts.maxLoraRank ?? 64,
      currentKey: (name) => {
        const entry = this.catalog.get(name);
        return entry && adapterKey(name, entry.version);
      },
      packed: (key) => this.resident.get(key) ?? this.host.get(key),
      inMemory: (key) => this.inMemory(key),
      isHostPinned: (key) => this.isHostPinned(key),
      ensureResident: (key, needMemory) => this.ensureResident(key, needMemory),
      retire: (key) => this.retire(key),
      changed: () => void this.changes++,
      failed: (key, error) => this.events.failed(key, error),
    });
  }

  // ── catalogue ────────────────────────────────────────────────────────────────────────────────────

  /** An adapter already packed in memory (offline use, tests): always resident in the host tier. */
  addResident(name: string, packed: PackedAdapter, summary?: AdapterSummary) {
    const entry = this.setEntry(name, 'memory', null, null);
    const key = adapterKey(name, entry.version);
    this.resident.set(key, packed);
    if (summary) this.summaries.set(key, summary);
  }

  /**
   * Loads and validates an adapter directory now, then serves it under `name` (a new version when
   * `replace`). Throws the load's error with the catalogue unchanged.
   */
  async register(name: string, dir: string, origin: AdapterOrigin, opts: { replace?: boolean; root?: string } = {}) {
    if (!ADAPTER_NAME.test(name) || name.includes('..')) throw createError('ADAPTER_NAME_INVALID', { name });
    const exists = () => {
      if (this.catalog.has(name) && !opts.replace) throw createError('ADAPTER_EXISTS', { name });
    };
    exists();
    const loader = this.requireLoader();
    const started = performance.now();
    let result: Awaited<ReturnType<AdapterLoader['load']>>;
    try {
      result = await loader.load(name, dir, opts.root);
    } catch (e) {
      this.events.loadTimed(name, (performance.now() - started) / 1000, false);
      throw e;
    }
    this.events.loadTimed(name, (performance.now() - started) / 1000, true);
    exists(); // a concurrent register may have won
    this.unloaded.delete(name);
    const entry = this.setEntry(name, origin, dir, null, opts.root);
    const key = adapterKey(name, entry.version);
    this.setSummary(key, result.summary);
    const pinned = (k: string) => this.isHostPinned(k);
    if (this.host.makeRoom(1, pinned)) this.host.put(key, result.packed, pinned);
    return this.info(entry);
  }

  /**
   * Stops serving a name; sequences already using it finish with its weights. False when unknown. A store
   * adapter stays unloaded until its files change (a rescan does not bring it back).
   */
  unregister(name: string): boolean {
    const entry = this.catalog.get(name);
    if (entry?.origin === 'store') this.unloaded.set(name, entry.fingerprint);
    return this.drop(name);
  }

  private drop(name: string): boolean {
    const entry = this.catalog.get(name);
    if (!entry) return false;
    this.catalog.delete(name);
    this.pinned.delete(name);
    this.changes++;
    this.retire(adapterKey(name, entry.version));
    return true;
  }

  /**
   * Brings store-listed names in line with a fresh listing: new names are added, names gone from the store
   * are dropped, changed fingerprints make new versions. Names from --adapter or the admin API win over the
   * store's; a store adapter unloaded through the API stays out until its fingerprint changes.
   */
  syncStore(listing: StoreEntry[]): { added: string[]; removed: string[]; changed: string[] } {
    const added: string[] = [];
    const changed: string[] = [];
    const listed = new Set<string>();
    for (const s of listing) {
      listed.add(s.name);
      if (this.unloaded.has(s.name)) {
        if (this.unloaded.get(s.name) === s.fingerprint) continue;
        this.unloaded.delete(s.name);
      }
      const entry = this.catalog.get(s.name);
      if (!entry) {
        this.setEntry(s.name, 'store', s.dir, s.fingerprint, s.root);
        added.push(s.name);
      } else if (entry.origin === 'store' && (entry.fingerprint !== s.fingerprint || entry.dir !== s.dir)) {
        const next = this.setEntry(s.name, 'store', s.dir, s.fingerprint, s.root);
        changed.push(s.name);
        // A pin follows the name: the new version comes into the host tier now.
        if (this.pinned.has(s.name)) this.ensureResident(adapterKey(s.name, next.version));
      }
    }
    for (const name of this.unloaded.keys()) if (!listed.has(name)) this.unloaded.delete(name);
    const removed: string[] = [];
    for (const entry of [...this.catalog.values()]) {
      if (entry.origin === 'store' && !listed.has(entry.name)) {
        this.drop(entry.name);
        removed.push(entry.name);
      }
    }
    return { added, removed, changed };
  }

  has(name: string): boolean {
    return this.catalog.has(name);
  }

  /** In the order they were first added (--adapter order, then the store's listing, then the admin API). */
  names(): string[] {
    return [...this.catalog.keys()];
  }

  /** Changes whenever list() may answer differently (cheap to poll every step; list() is not). */
  get revision(): number {
    return this.changes + this.slots.loads;
  }

  list(): AdapterInfo[] {
    return this.names().map((n) => this.info(this.catalog.get(n)!));
  }

  /** The current version's key; throws 404 for an unknown name and the cached error for a broken adapter. */
  resolve(name: string): string {
    const entry = this.catalog.get(name);
    if (!entry) throw createError('ADAPTER_NOT_FOUND', { name, where: 'the served adapters' }, { param: 'model' });
    const key = adapterKey(name, entry.version);
    const failure = this.failures.get(key);
    if (failure) throw failure;
    return key;
  }

  /**
   * A weighted combination's key (compose.ts): one virtual adapter, built from its resident components and
   * served like any adapter (host tier, one slot). One adapter at weight 1 is that adapter itself. Throws 400s
   * naming `lora[i].name` for an unknown or broken component, and the combination's own error once it failed.
   */
  resolveComposition(parts: readonly AdapterPart[]): string {
    return this.compositions.resolve(parts);
  }

  /**
   * Pins (or unpins) a name: its current version, and each new one as its files change, stays in the host
   * tier — loaded now if it is not — and the LRU never evicts it. At most max CPU LoRAs − 1 names are pinned,
   * so other adapters always have a host entry to load into. Throws 404 for an unknown name.
   */
  pin(name: string, pinned: boolean): AdapterInfo {
    const entry = this.catalog.get(name);
    if (!entry) {
      throw createError('ADAPTER_NOT_FOUND', { name, where: 'the served adapters' }, { param: 'lora_name' });
    }
    if (pinned && !this.pinned.has(name) && this.pinned.size + 1 >= this.host.capacity) {
      const message =
        `cannot pin '${name}': ${this.pinned.size} adapter(s) are pinned and the host cache holds ` +
        `${this.host.capacity} (at least one entry stays free for other adapters); unpin one or raise --max-cpu-loras`;
      throw createError('REQUEST_INVALID', { message }, { param: 'pinned' });
    }
    if (pinned !== this.pinned.has(name)) this.changes++;
    if (pinned) {
      this.pinned.add(name);
      this.ensureResident(adapterKey(name, entry.version));
    } else {
      this.pinned.delete(name);
      this.pumpDeferred();
    }
    return this.info(entry);
  }

  // ── residency ────────────────────────────────────────────────────────────────────────────────────

  /** A live sequence needs `key`: keep it in the host tier (loading it if needed) until release(). */
  retain(key: string) {
    this.retained.set(key, (this.retained.get(key) ?? 0) + 1);
    for (const part of this.compositions.partsOf(key) ?? []) this.retain(part.key);
    this.ensureResident(key);
  }

  release(key: string) {
    const n = (this.retained.get(key) ?? 0) - 1;
    if (n < 0) throw new Error(`adapter '${key}' released more often than retained`);
    if (n === 0) this.retained.delete(key);
    else this.retained.set(key, n);
    for (const part of this.compositions.partsOf(key) ?? []) this.release(part.key);
    if (n === 0 && !this.isCurrent(key)) this.retire(key);
    this.pumpDeferred();
  }

  /** Resident (slot or host) now; when not, a load is started (once) and the caller waits. */
  /** The adapter's weights are in a slot or in memory (a query: it starts nothing). */
  isReady(key: string): boolean {
    return this.slots.has(key) || this.inMemory(key);
  }

  /** Starts the adapter's load unless its weights are resident or already on their way (the engine asks). */
  requestLoad(key: string) {
    if (!this.isReady(key)) this.ensureResident(key);
  }

  /** Pins a kernel slot for a running sequence; null when none is free or the weights are not resident. */
  acquireSlot(key: string): number | null {
    return this.slots.acquire(key, () => this.resident.get(key) ?? this.host.get(key));
  }

  releaseSlot(key: string) {
    this.slots.release(key);
    if (!this.isCurrent(key) && !this.retained.has(key)) this.retire(key);
  }

  /**
   * The engine found this version at fault (its work threw): later requests get `error`, /v1/models shows
   * it failed, and its weights leave the tiers once no sequence pins them. A new version (replace, a changed
   * folder) is served afresh.
   */
  markBroken(key: string, error: LoraplexError) {
    if (!this.isCurrent(key)) return;
    this.changes++;
    this.failures.set(key, error);
    this.host.delete(key);
    this.resident.delete(key);
    this.slots.evict(key);
  }

  stats(): AdapterCacheStats {
    return {
      slotsUsed: this.slots.occupied(),
      slotsTotal: this.slots.size,
      hostUsed: this.host.size + this.resident.size,
      hostTotal: this.host.capacity + this.resident.size,
      loading: this.loading.size,
    };
  }

  /** Bytes held in the host cache (packedBytes), and its byte budget (Infinity: none). */
  hostBytes(): { hostBytes: number; hostBytesCapacity: number } {
    return { hostBytes: this.host.bytes, hostBytesCapacity: this.host.capacityBytes };
  }

  async close() {
    await this.opts.loader?.close();
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────────

  private setEntry(name: string, origin: AdapterOrigin, dir: string | null, fingerprint: string | null, root?: string) {
    const previous = this.catalog.get(name);
    const version = (this.lastVersion.get(name) ?? 0) + 1;
    this.lastVersion.set(name, version);
    this.changes++;
    const entry: CatalogEntry = { name, version, origin, dir, fingerprint, root };
    this.catalog.set(name, entry);
    if (dir !== null) this.sources.set(adapterKey(name, version), { dir, root });
    if (previous) this.retire(adapterKey(name, previous.version));
    return entry;
  }

  private isCurrent(key: string): boolean {
    const parts = this.compositions.partsOf(key);
    if (parts) return parts.every((p) => this.isCurrent(p.key));
    const entry = this.catalog.get(nameOf(key));
    return entry !== undefined && adapterKey(entry.name, entry.version) === key;
  }

  /** A live sequence needs the version, or it is the current version of a pinned name. */
  private isHostPinned(key: string): boolean {
    return this.retained.has(key) || (this.pinned.has(nameOf(key)) && this.isCurrent(key));
  }

  /** Drops a version nobody may use any more, from every tier it is not pinned in. */
  private retire(key: string) {
    if (this.retained.has(key)) return; // the last release() retires it
    this.changes++;
    this.host.delete(key);
    this.slots.evict(key);
    this.resident.delete(key);
    this.sources.delete(key);
    this.failures.delete(key);
    this.summaries.delete(key);
    this.deferred.delete(key);
    this.compositions.forget(key);
  }

  private inMemory(key: string): boolean {
    return this.resident.has(key) || this.host.has(key);
  }

  /**
   * Starts a load unless the version is resident (a slot, or memory) or loading. Any live version can be
   * loaded, also one replaced while a sequence waited for it.
   */
  private ensureResident(key: string, needMemory = false) {
    if (this.compositions.has(key)) return this.compositions.ensure(key);
    if ((this.slots.has(key) && !needMemory) || this.inMemory(key) || this.loading.has(key) || this.failures.has(key))
      return;
    const source = this.sources.get(key);
    if (source === undefined) return;
    if (!this.host.makeRoom(this.loading.size + 1, (k) => this.isHostPinned(k))) {
      this.deferred.add(key); // every host entry is in use: load when one is released
      return;
    }
    this.deferred.delete(key);
    this.startLoad(key, nameOf(key), source.dir, source.root);
  }

  private startLoad(key: string, name: string, dir: string, root?: string) {
    const loader = this.requireLoader();
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    this.changes++;
    const done = loader.load(name, dir, root).then(
      (result) => {
        this.changes++;
        this.loading.delete(key);
        this.events.loadTimed(name, seconds(), true);
        if (!this.isCurrent(key) && !this.retained.has(key)) return; // replaced or dropped meanwhile
        this.setSummary(key, result.summary);
        this.host.makeRoom(1, (k) => this.isHostPinned(k));
        this.host.put(key, result.packed, (k) => this.isHostPinned(k));
        this.events.ready(key);
      },
      (e: LoraplexError) => {
        this.changes++;
        this.loading.delete(key);
        this.events.loadTimed(name, seconds(), false);
        if (this.isCurrent(key)) this.failures.set(key, e);
        this.events.failed(key, e);
        this.pumpDeferred();
      },
    );
    this.loading.set(key, done);
  }

  /** Keeps a version's summary; its warnings are logged the first time only (a reload after eviction is quiet). */
  private setSummary(key: string, summary: AdapterSummary) {
    const first = !this.summaries.has(key);
    this.summaries.set(key, summary);
    if (!first) return;
    const log = this.opts.log ?? defaultAdapterLog();
    for (const warning of summary.warnings) log.warn(warning, { adapter: key });
  }

  private pumpDeferred() {
    for (const key of [...this.deferred]) {
      if (!this.isHostPinned(key)) {
        this.deferred.delete(key);
        continue;
      }
      this.ensureResident(key);
      if (this.deferred.has(key)) return; // still no room: keep the order
    }
  }

  private requireLoader(): AdapterLoader {
    if (!this.opts.loader) throw new Error('this engine has no adapter loader: pass packed adapters with addAdapter()');
    return this.opts.loader;
  }

  private info(entry: CatalogEntry): AdapterInfo {
    const key = adapterKey(entry.name, entry.version);
    const summary = this.summaries.get(key);
    const failure = this.failures.get(key);
    const tier: AdapterTier = this.slots.has(key)
      ? 'slot'
      : this.inMemory(key)
        ? 'host'
        : this.loading.has(key)
          ? 'loading'
          : failure
            ? 'failed'
            : 'disk';
    return {
      name: entry.name,
      version: entry.version,
      origin: entry.origin,
      tier,
      rank: summary?.rank ?? null,
      targets: summary ? [...summary.targets] : null,
      sizeBytes: summary?.sizeBytes ?? null,
      error: failure?.message ?? null,
      warnings: summary ? [...summary.warnings] : [],
      pinned: this.pinned.has(entry.name),
      files: entry.dir === null ? null : { dir: entry.dir, root: entry.root },
    };
  }
}
