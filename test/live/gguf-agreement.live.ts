/**
 * loraplex against llama.cpp's llama-server on the same GGUF files (SmolLM2-135M BF16 and Q8_0), a few corpus
 * prompts as token ids: the next-token logprobs at the end of each prompt (tokens in both top-20 sets) within
 * AGREEMENT_TOLERANCES (bench/gguf-agreement/tolerances.ts, set from docs/figures/gguf-agreement.json), the
 * same top-1 wherever llama.cpp's top-2 margin exceeds twice the tolerance, and greedy paths that part only at
 * such near-ties. Needs llama.cpp (peers/llamacpp/build.sh, setup.sh):
 *
 *   LORAPLEX_LLAMACPP_BIN=~/.cache/loraplex/llamacpp/build/bin/llama-server node scripts/run-live.mjs gguf-agreement
 *
 * Without it the live case is skipped with the reason; the comparison helpers are checked either way.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { firstDivergence, positionDiff, summarize } from '../../bench/gguf-agreement/compare.ts';
import { ensureFile, FILE_SETS } from '../../bench/gguf-agreement/files.ts';
import { agreementPrompts } from '../../bench/gguf-agreement/prompts.ts';
import { runFile } from '../../bench/gguf-agreement/run-file.ts';
import { AGREEMENT_TOLERANCES } from '../../bench/gguf-agreement/tolerances.ts';

const bin = process.env.LORAPLEX_LLAMACPP_BIN;
const LIVE_FILES = ['SmolLM2-135M BF16', 'SmolLM2-135M Q8_0'];

test('comparison: |Δ| over shared top-k tokens, top-1 and margins, first divergence', () => {
  const llama = new Map([
    [5, -0.5],
    [7, -1.5],
    [9, -3],
  ]);
  const ours = new Map([
    [7, -0.9],
    [5, -1.0],
    [11, -2.5],
  ]);
  const d = positionDiff(llama, ours);
  assert.deepEqual(
    d.deltas.map((x) => Math.round(x * 1e9) / 1e9),
    [0.5, 0.6],
  );
  assert.equal(d.overlap, 2 / 3);
  assert.equal(d.top1Agrees, false);
  assert.equal(d.margin, 1);
  assert.equal(d.otherTop1, 7);
  const same = positionDiff(llama, llama);
  const s = summarize([same, d]);
  assert.equal(s.top1Agree, 1);
  assert.equal(s.pairs, 5);
  assert.ok(Math.abs(s.maxAbsDelta - 0.6) < 1e-12);
  assert.deepEqual(s.top1FlipMargins, [1]);
  assert.equal(firstDivergence([5, 5], [same, d]), 1);
  assert.equal(firstDivergence([5], [same]), null);
});

test('live: loraplex and llama.cpp agree on the same GGUF within the stated tolerances', {
  skip: !bin
    ? 'LORAPLEX_LLAMACPP_BIN is not set (the llama-server binary: bash peers/llamacpp/build.sh)'
    : !existsSync(bin)
      ? `no llama-server at ${bin}`
      : false,
  timeout: 900_000,
}, async () => {
  const logDir = join(tmpdir(), 'loraplex-gguf-agreement');
  mkdirSync(logDir, { recursive: true });
  const prompts = agreementPrompts(6);
  for (const label of LIVE_FILES) {
    const spec = FILE_SETS.smollm2.find((f) => f.label === label);
    assert.ok(spec, label);
    const path = ensureFile(spec, bin as string);
    assert.ok(path, `no ${spec.path}: run bash peers/llamacpp/setup.sh`);
    const tol = AGREEMENT_TOLERANCES[label];
    assert.ok(tol, `no tolerance for ${label}`);
    const r = await runFile(label, path, prompts, {
      root: join(import.meta.dirname, '..', '..'),
      llamaBin: bin as string,
      threads: 2,
      kv: 'f32',
      tokens: 16,
      topK: 20,
      concurrency: 2,
      logDir,
      port: 18400 + Math.floor(Math.random() * 100) * 2,
    });
    const e = r.endOfPrompt;
    assert.equal(r.tokenizerAgree, prompts.length, `${label}: tokenizers differ`);
    assert.ok(e.maxAbsDelta <= tol.maxAbsDelta, `${label}: max |Δ logprob| ${e.maxAbsDelta} > ${tol.maxAbsDelta}`);
    assert.ok(
      e.medianAbsDelta <= tol.medianAbsDelta,
      `${label}: median |Δ| ${e.medianAbsDelta} > ${tol.medianAbsDelta}`,
    );
    const nearTie = tol.flipMargin;
    for (const m of e.top1FlipMargins) assert.ok(m < nearTie, `${label}: top-1 flipped at llama.cpp margin ${m}`);
    for (const d of r.greedy.divergences)
      assert.ok(d.llamaMargin < nearTie, `${label}: ${d.prompt} diverged at ${d.position}, margin ${d.llamaMargin}`);
  }
});
