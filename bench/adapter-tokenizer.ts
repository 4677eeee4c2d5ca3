/**
 * What loading an adapter's own tokenizer costs the HTTP thread: the served path (files read here, parsed,
 * built and checked on the adapter's tokenizer thread, a decoding-only copy built here) against building it
 * all on the HTTP thread, for real vocabularies (Qwen2.5's 151k tokens from node_modules; SmolLM2's 49k when
 * ~/.cache/loraplex/smollm2 has it). Per mode: time until the first request could use it, and the longest
 * event-loop stall meanwhile. Interleaved repeats, medians. Writes JSON.
 *
 *   npx tsx bench/adapter-tokenizer.ts [OUT.json]   (default artifacts/adapter-tokenizer.json)
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readAdapterTokenizerTexts } from '../src/server/adapter-tokenizer-files.ts';
import type { ServerContext } from '../src/server/context.ts';
import { RequestTokenizers } from '../src/server/request-tokenizers.ts';
import { baseFacts, buildAdapterTokenizer, parseAdapterTokenizerFiles } from '../src/tokenizer/adapter-tokenizer.ts';
import { textCodec } from '../src/tokenizer/text-codec.ts';
import { Tokenizer } from '../src/tokenizer/tokenizer.ts';

const REPEATS = 3;
const root = join(import.meta.dirname, '..');
const out = process.argv[2] ?? join(root, 'artifacts', 'adapter-tokenizer.json');
const sets = [
  { name: 'qwen2.5', dir: join(root, 'node_modules', '@lenml', 'tokenizer-qwen2_5', 'models'), vocab: 151665 },
  { name: 'smollm2', dir: join(homedir(), '.cache', 'loraplex', 'smollm2', 'model'), vocab: 49152 },
].filter((s) => existsSync(join(s.dir, 'tokenizer.json')));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs `load`, returning its wall time and the event loop's longest stall meanwhile (ms), from a 1 ms ticker. */
async function measured(load: () => Promise<unknown>) {
  let last = performance.now();
  let stall = 0;
  const tick = () => {
    const now = performance.now();
    stall = Math.max(stall, now - last);
    last = now;
  };
  const ticker = setInterval(tick, 1);
  const t0 = performance.now();
  await load();
  const ms = performance.now() - t0;
  await new Promise((resolve) => setTimeout(resolve, 5)); // the ticker sees a stall that ended the load
  clearInterval(ticker);
  tick();
  return { ms, stallMs: stall };
}

const work = await mkdtemp(join(tmpdir(), 'loraplex-bench-adapter-tok-'));
const results = [];
try {
  for (const set of sets) {
    const base = await Tokenizer.fromDir(set.dir);
    const adapterDir = join(work, set.name);
    await mkdir(adapterDir, { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) await cp(join(set.dir, f), join(adapterDir, f));
    const runs: Record<'thread' | 'inline', { ms: number; stallMs: number }[]> = { thread: [], inline: [] };
    for (let r = 0; r < REPEATS; r++) {
      // The served path: a fresh RequestTokenizers (nothing cached), one adapter version.
      const engine = {
        adapters: [{ name: 'a', version: r, files: { dir: adapterDir } }],
        info: { vocabSize: set.vocab, maxModelLen: 4096 },
      };
      const tokenizers = new RequestTokenizers({ codec: textCodec(base), engine } as unknown as ServerContext);
      runs.thread.push(await measured(() => tokenizers.forModel('a')));
      await tokenizers.close();
      // Everything on the HTTP thread (what the first version did).
      runs.inline.push(
        await measured(async () => {
          const texts = await readAdapterTokenizerTexts('a', adapterDir);
          buildAdapterTokenizer('a', parseAdapterTokenizerFiles('a', texts!), baseFacts(base, set.vocab));
        }),
      );
    }
    const summary = (xs: { ms: number; stallMs: number }[]) => ({
      readyMs: Math.round(median(xs.map((x) => x.ms))),
      longestStallMs: Math.round(median(xs.map((x) => x.stallMs))),
    });
    results.push({
      tokenizer: set.name,
      vocab: base.vocabSize,
      thread: summary(runs.thread),
      inline: summary(runs.inline),
    });
    console.log(JSON.stringify(results.at(-1)));
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ repeats: REPEATS, results }, null, 2)}\n`);
console.log(`wrote ${out}`);
