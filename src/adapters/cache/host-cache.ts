/**
 * The host tier: packed adapters in memory, least-recently-used first out. An entry the caller says is
 * pinned (a live sequence needs it) is never evicted, so the cache may run over capacity only while every
 * entry is pinned. Capacity is a number of adapters and, optionally, bytes (`packedBytes`: LoRA factors,
 * DoRA scales and edge modules such as a saved embedding copy, which can outweigh many plain adapters).
 */
import type { PackedAdapter } from '../../kernels/types.ts';
import { edgeBytes, edgesOf } from '../kinds/edge-modules.ts';

/** Bytes a packed adapter holds in host memory. */
export function packedBytes(p: PackedAdapter): number {
  const vectors = [p.rank, p.offsetA, p.offsetB, p.scale, p.inFeatures, p.outFeatures, p.outScale, p.offsetOutScale];
  return p.weights.byteLength + vectors.reduce((n, v) => n + (v?.byteLength ?? 0), 0) + edgeBytes(edgesOf(p));
}

export class HostCache {
  // Map order is recency order: a hit moves the entry to the end.
  private readonly entries = new Map<string, PackedAdapter>();
  private held = 0;

  constructor(
    readonly capacity: number,
    /** At most this many bytes (packedBytes) of unpinned entries beyond the newest; Infinity: count only. */
    readonly capacityBytes = Number.POSITIVE_INFINITY,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`host cache capacity must be ≥ 1 (got ${capacity})`);
    if (!(capacityBytes > 0)) throw new RangeError(`host cache byte capacity must be > 0 (got ${capacityBytes})`);
  }

  /** Bytes of every entry held (packedBytes). */
  get bytes(): number {
    return this.held;
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

  /**
   * Adds or refreshes an entry; then, over the byte capacity, evicts unpinned others oldest first until it
   * fits (or only pinned ones are left: the tier may run over while they are needed).
   */
  put(key: string, packed: PackedAdapter, isPinned: (key: string) => boolean = () => false) {
    this.delete(key);
    this.entries.set(key, packed);
    this.held += packedBytes(packed);
    for (const other of [...this.entries.keys()]) {
      if (this.held <= this.capacityBytes) break;
      if (other !== key && !isPinned(other)) this.delete(other);
    }
  }

  delete(key: string): boolean {
    const packed = this.entries.get(key);
    if (packed) this.held -= packedBytes(packed);
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
      this.delete(key);
      if (this.entries.size + extra <= this.capacity) return true;
    }
    return false;
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }
}
