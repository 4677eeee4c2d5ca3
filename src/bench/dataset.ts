/**
 * --input-file: a JSONL dataset, one request per line: {"text": "..."} or {"messages": [{role, content}]},
 * optionally with "model" and "max_tokens" (AIPerf's "output_length" is read too).
 */
import { readFile } from 'node:fs/promises';
import type { ChatMessage, PromptInput } from './endpoint.ts';
import type { TextTokenizer } from './prompts.ts';

export interface DatasetEntry {
  prompt: PromptInput;
  inputTokens: number;
  model?: string;
  maxTokens?: number;
}

function isMessages(value: unknown): value is ChatMessage[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((m) => m && typeof m.role === 'string' && typeof m.content === 'string')
  );
}

export function parseDataset(text: string, tokenizer: TextTokenizer, origin = 'dataset'): DatasetEntry[] {
  const entries: DatasetEntry[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${origin}:${i + 1}`;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    let prompt: PromptInput;
    let counted: string;
    if (typeof row.text === 'string') {
      prompt = { text: row.text };
      counted = row.text;
    } else if (isMessages(row.messages)) {
      prompt = { messages: row.messages };
      counted = row.messages.map((m) => m.content).join(' ');
    } else {
      throw new Error(`${where}: expected a "text" string or a "messages" list of {role, content}`);
    }
    const entry: DatasetEntry = { prompt, inputTokens: tokenizer.count(counted) };
    if (row.model !== undefined) {
      if (typeof row.model !== 'string' || row.model === '') throw new Error(`${where}: "model" must be a name`);
      entry.model = row.model;
    }
    const maxTokens = row.max_tokens ?? row.output_length;
    if (maxTokens !== undefined) {
      if (!Number.isInteger(maxTokens) || (maxTokens as number) < 1) {
        throw new Error(`${where}: "max_tokens" must be a positive integer`);
      }
      entry.maxTokens = maxTokens as number;
    }
    entries.push(entry);
  });
  if (entries.length === 0) throw new Error(`${origin}: no request in the file`);
  return entries;
}

export async function loadDataset(path: string, tokenizer: TextTokenizer): Promise<DatasetEntry[]> {
  return parseDataset(await readFile(path, 'utf8'), tokenizer, path);
}
