/**
 * Server-sent events as the OpenAI streaming API frames them: `data: {json}` events separated by blank lines,
 * ended by `data: [DONE]`. Fed text as it arrives; chunk boundaries may fall anywhere, even inside a line.
 */
export class SseParser {
  private buffer = '';
  done = false;

  /** The JSON payloads of the events completed by `text`. */
  feed(text: string): unknown[] {
    // Normalized after joining: a CRLF may arrive split across two pieces.
    this.buffer = (this.buffer + text).replace(/\r\n/g, '\n');
    const out: unknown[] = [];
    let end = this.buffer.indexOf('\n\n');
    while (end >= 0) {
      const event = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data === '[DONE]') this.done = true;
      else if (data) out.push(JSON.parse(data));
      end = this.buffer.indexOf('\n\n');
    }
    return out;
  }
}
