/**
 * Runtime adapter operations, one at a time, interleaved with the traffic: loads of new adapters into the
 * uploads root, load_inplace replacements, unloads, store replacements (files rewritten, then a rescan),
 * broken store adapters touched (a new version to load and refuse again), and admin requests a correct
 * server refuses (a name already loaded, an unknown name, a path outside the allowed root, a broken
 * adapter through the admin route).
 *
 *   const lane = new AdminLane({ seed, config, store, adminKey, maxUploaded: 12 });
 *   const { req, after } = await lane.next();  // files written; send req, then after(status)
 */
import { rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { createModelSelector, type ModelSelector } from '../../src/bench/adapter-selection.ts';
import { BenchRandom } from '../../src/bench/random.ts';
import type { ModelConfig } from '../../src/model/config.ts';
import type { SoakRequest } from './http.ts';
import {
  type AdapterSpec,
  BAD_KINDS,
  GOOD_RANKS,
  goodSpec,
  type SoakStore,
  writeAdapter,
  writeBadAdapter,
} from './store-writer.ts';

export interface AdminOptions {
  seed: number;
  config: ModelConfig;
  store: SoakStore;
  adminKey: string;
  maxUploaded: number;
}

export interface AdminStep {
  req: SoakRequest;
  /** Updates the lane's view of what is loaded, given the answer's status. */
  after: (status: number | null) => Promise<void>;
}

interface Uploaded {
  name: string;
  version: number;
  dir: string;
  spec: AdapterSpec;
}

export class AdminLane {
  private readonly rng: BenchRandom;
  private readonly pickStore: ModelSelector;
  private readonly loaded = new Map<string, Uploaded>();
  /** When each runtime adapter's unload was sent (performance.now()). */
  readonly unloadedAt = new Map<string, number>();
  private nextId = 0;
  private seedCounter = 50_000;
  private turn = 0;

  constructor(private readonly o: AdminOptions) {
    this.rng = new BenchRandom(o.seed).fork(3);
    this.pickStore = createModelSelector('zipf', o.store.good, new BenchRandom(o.seed).fork(4), 1);
  }

  /** Runtime adapters that traffic may name now. */
  uploaded(): string[] {
    return [...this.loaded.keys()];
  }

  /** Statuses a request for `model` may also get: 404 once its adapter's unload was sent during it. */
  alsoExpect(model: string | undefined, startMs: number): number[] {
    const at = model === undefined ? undefined : this.unloadedAt.get(model);
    return at !== undefined && at >= startMs - 1 ? [404] : [];
  }

  async next(): Promise<AdminStep> {
    const u = this.rng.next();
    const turn = this.turn++;
    // Every 8th op is one a correct server refuses; the rest keep adapters churning.
    if (turn % 8 === 7) return this.refused(Math.floor(turn / 8));
    if (this.loaded.size === 0 || (u < 0.3 && this.loaded.size < this.o.maxUploaded)) return this.load();
    if (u < 0.55) return this.replace();
    if (u < 0.75 || this.loaded.size >= this.o.maxUploaded) return this.unload();
    if (u < 0.88) return this.storeReplace();
    return this.storeRetouchBad();
  }

  private spec(): AdapterSpec {
    const i = this.rng.int(1000);
    return { ...goodSpec(i, this.o.seed), rank: GOOD_RANKS[this.rng.int(GOOD_RANKS.length)], seed: this.seedCounter++ };
  }

  private request(kind: string, path: string, body: unknown, expect: number[]): SoakRequest {
    return { kind: `admin:${kind}`, path, body: JSON.stringify(body), key: this.o.adminKey, stream: false, expect };
  }

  private async load(): Promise<AdminStep> {
    const name = `u${String(this.nextId++).padStart(3, '0')}`;
    const up: Uploaded = { name, version: 1, dir: join(this.o.store.uploadsDir, `${name}-v1`), spec: this.spec() };
    await writeAdapter(up.dir, this.o.config, up.spec);
    return {
      req: this.request('load', '/v1/load_lora_adapter', { lora_name: name, lora_path: up.dir }, [200]),
      after: async (status) => {
        if (status === 200) this.loaded.set(name, up);
        else await rm(up.dir, { recursive: true, force: true });
      },
    };
  }

  private pickLoaded(): Uploaded {
    const all = [...this.loaded.values()];
    return all[this.rng.int(all.length)];
  }

  private async replace(): Promise<AdminStep> {
    const old = this.pickLoaded();
    const version = old.version + 1;
    const up: Uploaded = {
      ...old,
      version,
      dir: join(this.o.store.uploadsDir, `${old.name}-v${version}`),
      spec: this.spec(),
    };
    await writeAdapter(up.dir, this.o.config, up.spec);
    const body = { lora_name: old.name, lora_path: up.dir, load_inplace: true };
    return {
      req: this.request('load-inplace', '/v1/load_lora_adapter', body, [200]),
      after: async (status) => {
        const ok = status === 200;
        if (ok) this.loaded.set(old.name, up);
        await rm(ok ? old.dir : up.dir, { recursive: true, force: true });
      },
    };
  }

  private async unload(): Promise<AdminStep> {
    const up = this.pickLoaded();
    // Traffic stops naming it before the request goes out; requests already in flight may get 404.
    this.loaded.delete(up.name);
    this.unloadedAt.set(up.name, performance.now());
    return {
      req: this.request('unload', '/v1/unload_lora_adapter', { lora_name: up.name }, [200]),
      after: async () => rm(up.dir, { recursive: true, force: true }),
    };
  }

  /** Rewrites a popular store adapter's files (same rank and targets, new weights), then rescans. */
  private async storeReplace(): Promise<AdminStep> {
    const name = this.pickStore();
    const old = this.o.store.specs.get(name) as AdapterSpec;
    const spec = { ...old, seed: this.seedCounter++ };
    await writeAdapter(join(this.o.store.storeDir, name), this.o.config, spec);
    this.o.store.specs.set(name, spec);
    return { req: this.request('store-replace+rescan', '/v1/rescan_lora_adapters', {}, [200]), after: async () => {} };
  }

  /** Touches a broken store adapter's config: a new version, so the server must load it (and refuse it) again. */
  private async storeRetouchBad(): Promise<AdminStep> {
    const bad = this.o.store.bad[this.rng.int(this.o.store.bad.length)];
    const now = new Date();
    await utimes(join(this.o.store.storeDir, bad.name, 'adapter_config.json'), now, now);
    return {
      req: this.request('store-retouch-bad+rescan', '/v1/rescan_lora_adapters', {}, [200]),
      after: async () => {},
    };
  }

  private async refused(n: number): Promise<AdminStep> {
    const none = async () => {};
    switch (n % 4) {
      case 0: {
        const existing = this.loaded.size > 0 ? this.pickLoaded() : null;
        if (!existing) return this.load();
        const body = { lora_name: existing.name, lora_path: existing.dir };
        return { req: this.request('load-existing', '/v1/load_lora_adapter', body, [400]), after: none };
      }
      case 1:
        return {
          req: this.request('unload-unknown', '/v1/unload_lora_adapter', { lora_name: 'never-loaded' }, [404]),
          after: none,
        };
      case 2: {
        const body = { lora_name: 'outside', lora_path: this.o.store.outsideDir };
        return { req: this.request('load-outside-root', '/v1/load_lora_adapter', body, [400]), after: none };
      }
      default: {
        const kind = BAD_KINDS[this.rng.int(BAD_KINDS.length)];
        const dir = join(this.o.store.uploadsDir, `bad-${kind}`);
        await writeBadAdapter(dir, kind, this.o.config, this.o.store.outsideDir);
        const body = { lora_name: `bad-upload-${kind}`, lora_path: dir };
        return { req: this.request(`load-bad:${kind}`, '/v1/load_lora_adapter', body, [400]), after: none };
      }
    }
  }
}
