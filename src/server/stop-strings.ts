/**
 * Stop strings over streamed text. Text goes in as it is detokenized; what comes out is safe to send: the
 * text before the first stop string (or through it, with include_stop_str_in_output), holding back only a
 * tail that could still grow into a stop string, released as soon as it no longer can.
 *
 *   const stops = new StopStringMatcher(['\n\n', 'END']);
 *   for (const piece of pieces) {
 *     const { text, stop } = stops.push(piece);
 *     send(text);
 *     if (stop !== null) break; // finish_reason 'stop', stop_reason = stop
 *   }
 *   send(stops.flush()); // generation ended without a match: the held-back tail
 *
 * The earliest match in the text wins (list order breaks ties at one position), so the returned text never
 * contains a stop string. Offsets below are absolute positions in the whole text (UTF-16 units).
 */

export interface StopResult {
  /** Text that can be sent now. */
  text: string;
  /** The stop string that matched (generation is over), or null. */
  stop: string | null;
}

export class StopStringMatcher {
  /** The latest text: everything not yet returned plus enough before it to find a match that ends later. */
  private tail = '';
  private tailStart = 0;
  private returned = 0;
  private readonly context: number;
  private matched = false;

  constructor(
    private readonly stops: readonly string[],
    private readonly includeStop = false,
  ) {
    if (stops.some((s) => s.length === 0)) throw new RangeError('a stop string cannot be empty');
    this.context = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /**
   * Adds the next text. `canStop` false (tokens up to min_tokens): no stop string may end in this text, but
   * one may start in it and end in later text.
   */
  push(text: string, canStop = true): StopResult {
    if (this.matched) return { text: '', stop: null };
    const newStart = this.end;
    this.tail += text;
    if (canStop && text.length > 0) {
      const match = this.find(newStart);
      if (match) {
        this.matched = true;
        const cut = match.at + (this.includeStop ? match.stop.length : 0);
        return { text: this.take(cut), stop: match.stop };
      }
    }
    const hold = this.includeStop ? 0 : this.heldBack();
    const out = this.take(this.end - hold);
    const keepFrom = Math.min(this.returned, this.end - this.context);
    if (keepFrom > this.tailStart) {
      this.tail = this.tail.slice(keepFrom - this.tailStart);
      this.tailStart = keepFrom;
    }
    return { text: out, stop: null };
  }

  /** At the end of generation without a match: the held-back text. */
  flush(): string {
    return this.matched ? '' : this.take(this.end);
  }

  private get end(): number {
    return this.tailStart + this.tail.length;
  }

  /** Text from what was returned up to `upTo`, marked returned. */
  private take(upTo: number): string {
    if (upTo <= this.returned) return '';
    const text = this.tail.slice(this.returned - this.tailStart, upTo - this.tailStart);
    this.returned = upTo;
    return text;
  }

  /** The earliest stop string that ends in the new text (after `newStart`). */
  private find(newStart: number): { at: number; stop: string } | null {
    let best: { at: number; stop: string } | null = null;
    for (const stop of this.stops) {
      const from = newStart - stop.length + 1;
      const i = this.tail.indexOf(stop, Math.max(0, from - this.tailStart));
      if (i < 0) continue;
      const at = this.tailStart + i;
      if (best === null || at < best.at) best = { at, stop };
    }
    return best;
  }

  /** Length of the longest unreturned tail that is a proper prefix of some stop string. */
  private heldBack(): number {
    const pending = this.end - this.returned;
    let hold = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, pending); n > hold; n--) {
        if (this.tail.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return hold;
  }
}
