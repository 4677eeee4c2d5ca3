/**
 * Incremental Server-Sent Events parsing: bytes arrive in arbitrary pieces (an event may span several
 * network chunks, a chunk may hold several events); push() returns the events completed so far.
 *
 *   const sse = new SseParser();
 *   for (const event of sse.push(chunk)) if (event.data !== '[DONE]') handle(JSON.parse(event.data));
 */
export interface SseEvent {
  /** The `event:` field, if any. */
  event: string | null;
  /** The `data:` lines joined by '\n'. */
  data: string;
}

export class SseParser {
  private readonly decoder = new TextDecoder();
  private buffer = '';
  private dataLines: string[] = [];
  private eventName: string | null = null;

  push(chunk: Uint8Array | string): SseEvent[] {
    this.buffer += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    const events: SseEvent[] = [];
    for (;;) {
      const newline = this.buffer.search(/\r\n|\r|\n/);
      if (newline < 0) break;
      // A lone '\r' at the end may be the first half of '\r\n': wait for the next chunk.
      if (this.buffer[newline] === '\r' && newline === this.buffer.length - 1) break;
      const width = this.buffer.startsWith('\r\n', newline) ? 2 : 1;
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + width);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  /** The event left open when the stream ended without a blank line. */
  end(): SseEvent[] {
    const tail = this.buffer;
    this.buffer = '';
    const events: SseEvent[] = [];
    if (tail) {
      const event = this.line(tail);
      if (event) events.push(event);
    }
    const last = this.dispatch();
    if (last) events.push(last);
    return events;
  }

  private line(line: string): SseEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.dataLines.push(value);
    else if (field === 'event') this.eventName = value;
    return null;
  }

  private dispatch(): SseEvent | null {
    if (this.dataLines.length === 0) {
      this.eventName = null;
      return null;
    }
    const event = { event: this.eventName, data: this.dataLines.join('\n') };
    this.dataLines = [];
    this.eventName = null;
    return event;
  }
}
