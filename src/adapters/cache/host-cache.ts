/**
 * The host tier: packed adapters in memory, least-recently-used first out. An entry the caller says is
 * pinned (a live sequence needs it) is never evicted, so the cache may run over capacity only while every
 * entry is pinned.
 */
import type { PackedAdapter } from '../../kernels/types.ts';

export class HostCache {
  // Map order is recency order: a hit moves the entry to the end.
  private readonly entries = new Map<string, PackedAdapter>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`host cache capacity must be ≥ 1 (got ${capacity})`);
  }

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): PackedAdapter | null {
    const packed = this.entries.get(key);
    if (!packed) return null;
    this.entries.delete(key);
    this.entries.set(key, packed);
    return packed;
  }

  put(key: string, packed: PackedAdapter) {
    this.entries.delete(key);
    this.entries.set(key, packed);
  }

  delete(key: string): boolean {
    return this.entries.delete(key);
  }

  /** Evicts unpinned entries, oldest first, until `extra` more fit; false when pinned entries leave no room. */
  makeRoom(extra: number, isPinned: (key: string) => boolean): boolean {
    if (this.entries.size + extra <= this.capacity) return true;
    let evictable = 0;
    for (const key of this.entries.keys()) if (!isPinned(key)) evictable++;
    if (this.entries.size - evictable + extra > this.capacity) return false; // evict nothing in vain
    for (const key of [...this.entries.keys()]) {
      if (isPinned(key)) continue;
      this.entries.delete(key);
      if (this.entries.size + extra <= this.capacity) return true;
    }
    return false;
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }
}
