/**
 * Kernel slots for adapters: a batch can only mix adapters that hold a slot. A slot is pinned while a
 * running sequence uses it; unpinned slots are reused least-recently-used first.
 */
import type { Kernels, LoraBank, LoraDtype, PackedAdapter } from '../kernels/types.ts';
import type { SlotProvider } from './scheduler/scheduler.ts';

interface SlotState {
  adapter: string | null;
  pins: number;
  lastUsed: number;
}

export class AdapterSlots implements SlotProvider {
  readonly bank: LoraBank;
  private readonly slots: SlotState[];
  private readonly slotOf = new Map<string, number>();
  private clock = 0;
  loads = 0; // packs into a slot, for metrics and tests

  constructor(
    private readonly kernels: Kernels,
    numSlots: number,
    numModules: number,
    /** The packed weights of an adapter held in host memory. */
    private readonly packed: (adapter: string) => PackedAdapter,
    /** How the bank stores adapter matrices ('bf16' halves what decode reads). */
    dtype: LoraDtype = 'f32',
  ) {
    this.bank = kernels.createLoraBank(numSlots, numModules, dtype);
    this.slots = Array.from({ length: numSlots }, () => ({ adapter: null, pins: 0, lastUsed: 0 }));
  }

  acquire(adapter: string): number | null {
    let slot = this.slotOf.get(adapter);
    if (slot === undefined) {
      const free = this.freeOrLeastRecentlyUsed();
      if (free === null) return null;
      slot = free;
      const previous = this.slots[slot].adapter;
      if (previous !== null) this.slotOf.delete(previous);
      this.kernels.setLoraSlot(this.bank, slot, this.packed(adapter));
      this.loads++;
      this.slots[slot].adapter = adapter;
      this.slotOf.set(adapter, slot);
    }
    const s = this.slots[slot];
    s.pins++;
    s.lastUsed = ++this.clock;
    return slot;
  }

  release(adapter: string) {
    const slot = this.slotOf.get(adapter);
    if (slot === undefined) throw new Error(`adapter '${adapter}' holds no slot`);
    const s = this.slots[slot];
    if (s.pins <= 0) throw new Error(`adapter '${adapter}' released more often than acquired`);
    s.pins--;
  }

  /** Drops an adapter from its slot (it must not be pinned), e.g. when it is unloaded or replaced. */
  evict(adapter: string): boolean {
    const slot = this.slotOf.get(adapter);
    if (slot === undefined) return false;
    if (this.slots[slot].pins > 0) throw new Error(`adapter '${adapter}' is in use and cannot be evicted`);
    this.kernels.clearLoraSlot(this.bank, slot);
    this.slots[slot].adapter = null;
    this.slotOf.delete(adapter);
    return true;
  }

  pinned(): number {
    return this.slots.filter((s) => s.pins > 0).length;
  }

  private freeOrLeastRecentlyUsed(): number | null {
    let best: number | null = null;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (s.adapter === null) return i;
      if (s.pins === 0 && (best === null || s.lastUsed < this.slots[best].lastUsed)) best = i;
    }
    return best;
  }
}
