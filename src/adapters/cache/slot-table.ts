/**
 * Kernel slots for adapters: a batch can only mix adapters that hold a slot. A slot is pinned while a
 * running sequence uses it; unpinned slots are reused least-recently-used first. Slots are keyed by an
 * adapter version's key (`name@version`), so a replaced adapter never shares a slot with its old weights.
 */
import type { Backend } from '../../backends/types.ts';
import type { LoraBank, LoraDtype, PackedAdapter } from '../../kernels/types.ts';

/** What slots need from a backend: a bank of adapter slots in its memory, and copies into it. */
export type SlotBackend = Pick<Backend, 'createLoraBank' | 'setLoraSlot' | 'clearLoraSlot'>;

/** What a slot holds besides the bank's LoRA factors (kinds/edge-slots.ts: embedding, norms, lm_head). */
export interface SlotContents {
  place(slot: number, packed: PackedAdapter): void;
  clear(slot: number): void;
}

interface SlotState {
  key: string | null;
  pins: number;
  lastUsed: number;
}

export class SlotTable {
  readonly bank: LoraBank;
  private readonly slots: SlotState[];
  private readonly slotOf = new Map<string, number>();
  private clock = 0;
  loads = 0; // packs into a slot, for metrics and tests

  constructor(
    private readonly backend: SlotBackend,
    numSlots: number,
    numModules: number,
    /** How the bank stores adapter matrices ('bf16' halves what decode reads). */
    dtype: LoraDtype = 'f32',
    /** Told when an unpinned adapter loses its slot to another (not on evict()). */
    private readonly onDisplaced: (key: string) => void = () => {},
    private readonly contents?: SlotContents,
  ) {
    this.bank = backend.createLoraBank(numSlots, numModules, dtype);
    this.slots = Array.from({ length: numSlots }, () => ({ key: null, pins: 0, lastUsed: 0 }));
  }

  get size(): number {
    return this.slots.length;
  }

  has(key: string): boolean {
    return this.slotOf.has(key);
  }

  /**
   * Pins a slot holding `key`, copying `packed()` into a free or least-recently-used unpinned slot when it
   * holds none. Null when every slot is pinned by others, or when `packed()` has nothing to copy.
   */
  acquire(key: string, packed: () => PackedAdapter | null): number | null {
    let slot = this.slotOf.get(key);
    if (slot === undefined) {
      const free = this.freeOrLeastRecentlyUsed();
      if (free === null) return null;
      const weights = packed();
      if (!weights) return null;
      slot = free;
      const previous = this.slots[slot].key;
      if (previous !== null) {
        this.slotOf.delete(previous);
        this.slots[slot].key = null;
        this.onDisplaced(previous);
      }
      try {
        this.backend.setLoraSlot(this.bank, slot, weights);
        this.contents?.place(slot, weights);
      } catch (e) {
        // A copy that fails half-way leaves the slot empty, never holding part of anyone's weights.
        this.backend.clearLoraSlot(this.bank, slot);
        this.contents?.clear(slot);
        throw e;
      }
      this.loads++;
      this.slots[slot].key = key;
      this.slotOf.set(key, slot);
    }
    const s = this.slots[slot];
    s.pins++;
    s.lastUsed = ++this.clock;
    return slot;
  }

  release(key: string) {
    const slot = this.slotOf.get(key);
    if (slot === undefined) throw new Error(`adapter '${key}' holds no slot`);
    const s = this.slots[slot];
    if (s.pins <= 0) throw new Error(`adapter '${key}' released more often than acquired`);
    s.pins--;
  }

  isPinned(key: string): boolean {
    const slot = this.slotOf.get(key);
    return slot !== undefined && this.slots[slot].pins > 0;
  }

  /** Drops a key from its slot unless it is pinned; true when it held none or was dropped. */
  evict(key: string): boolean {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return true;
    if (this.slots[slot].pins > 0) return false;
    this.backend.clearLoraSlot(this.bank, slot);
    this.contents?.clear(slot);
    this.slots[slot].key = null;
    this.slotOf.delete(key);
    return true;
  }

  pinned(): number {
    return this.slots.filter((s) => s.pins > 0).length;
  }

  occupied(): number {
    return this.slotOf.size;
  }

  private freeOrLeastRecentlyUsed(): number | null {
    let best: number | null = null;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (s.key === null) return i;
      if (s.pins === 0 && (best === null || s.lastUsed < this.slots[best].lastUsed)) best = i;
    }
    return best;
  }
}
