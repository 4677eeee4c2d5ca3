/** The SmolLM2 oracle set (`bash oracle/run.sh smollm2`): cases with greedy tokens and margins, last-position logits. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/model/safetensors.ts';

export interface OracleCase {
  id: string;
  adapter: string | null;
  prompt_ids: number[];
  greedy_tokens: number[];
  /** Top-1 minus top-2 logit at each greedy step of the oracle's own run. */
  greedy_margins: number[];
  logits_key: string;
}

export interface OracleSet {
  dir: string;
  cases: OracleCase[];
  adapterNames: string[];
  /** Last-prompt-position logits [vocab] of each case, by case id. */
  logits: Map<string, Float32Array>;
}

export async function readOracleSet(dir: string): Promise<OracleSet> {
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { cases: OracleCase[] };
  const file = await SafetensorsFile.open(join(dir, 'logits.safetensors'));
  const logits = new Map<string, Float32Array>();
  for (const c of expected.cases) logits.set(c.id, (await file.readF32(c.logits_key)).data);
  const adapterNames = [...new Set(expected.cases.map((c) => c.adapter).filter((a): a is string => a !== null))];
  return { dir, cases: expected.cases, adapterNames, logits };
}
