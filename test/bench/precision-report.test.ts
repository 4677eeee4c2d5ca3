/** bench:precision's page and charts from its artifact: the --bf16-dot rows told apart, older artifacts still read. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CaseResult } from '../../bench/precision/accuracy.ts';
import { precisionCharts } from '../../bench/precision/charts.ts';
import type { AccuracyRun, PrecisionArtifact } from '../../bench/precision/report.ts';
import { precisionMarkdown } from '../../bench/precision/report.ts';
import { accuracyOf, dotPathOf } from '../../bench/precision/summary.ts';

function cases(worst: number, diverged = 0): CaseResult[] {
  return Array.from({ length: 4 }, (_, i) => ({
    id: `c${i}`,
    maxAbsDiff: i === 0 ? worst : worst / 2,
    identical: i >= diverged,
    firstDivergence: i < diverged ? 10 + i : null,
    marginAtDivergence: i < diverged ? 0.01 : null,
    marginDrift: worst / 4,
  }));
}

function run(model: 'f32' | 'bf16', worst: number, extra: Partial<AccuracyRun> = {}): AccuracyRun {
  return {
    model,
    loraDtype: 'f32',
    kvCacheDtype: 'f32',
    reference: model === 'f32' ? 'oracle' : 'engine',
    kvBytesPerToken: 23040,
    seconds: 14,
    cases: cases(worst),
    vsOracle: model === 'bf16' ? cases(0.25) : null,
    ...extra,
  };
}

/** An artifact as written before --bf16-dot had rows: no bf16Dot field, no dotThroughput. */
function olderArtifact(): PrecisionArtifact {
  return {
    generated: '2026-12-01T10:00:00.000Z',
    command: 'npm run bench:precision',
    machine: { isa: 'avx512bf16', threads: 2 },
    model: 'SmolLM2-135M-Instruct (oracle/smollm2.py)',
    quick: false,
    accuracy: [run('f32', 1e-4), run('bf16', 0)],
    throughput: {
      workload: { sequences: 32, adapters: 32, rank: 16, promptTokens: 128, rounds: 2, stepsPerRound: 6 },
      results: [
        {
          loraDtype: 'f32',
          kvCacheDtype: 'f32',
          roundTokensPerSecond: [100, 110],
          medianTokensPerSecond: 105,
          ratio: 1,
          kvBytesPerToken: 23040,
          slotBytesPerAdapter: 1e6,
        },
      ],
    },
    seconds: 200,
    peftBf16Kv: null,
  };
}

function withDotRuns(): PrecisionArtifact {
  const a = olderArtifact();
  a.accuracy.push(
    { ...run('bf16', 0.125), bf16Dot: true, bf16DotPath: 'amx', vsOracle: cases(0.375, 1) },
    { ...run('bf16', 0.0625), bf16Dot: true, bf16DotPath: 'vdpbf16ps', vsOracle: cases(0.3125) },
  );
  a.dotThroughput = {
    workload: { sequences: 16, adapters: 16, rank: 16, promptTokens: 128, decodeSteps: 8, rounds: 2 },
    results: [
      {
        path: 'off',
        prefillTokensPerSecond: [1000, 900],
        decodeTokensPerSecond: [50, 40],
        prefillRatio: 1,
        decodeRatio: 1,
      },
      {
        path: 'amx',
        prefillTokensPerSecond: [4000, 3150],
        decodeTokensPerSecond: [60, 52],
        prefillRatio: 3.75,
        decodeRatio: 1.25,
      },
      {
        path: 'vdpbf16ps',
        prefillTokensPerSecond: [1500, 1260],
        decodeTokensPerSecond: [55, 40],
        prefillRatio: 1.45,
        decodeRatio: 1.05,
      },
    ],
  };
  return a;
}

test('an artifact without the bf16Dot field reads as dot off: no dot rows, lines or section', () => {
  const a = olderArtifact();
  assert.equal(dotPathOf(a.accuracy[1]), 'off');
  assert.equal(accuracyOf(a, 'bf16', 'f32', 'f32'), a.accuracy[1]);
  assert.equal(accuracyOf(a, 'bf16', 'f32', 'f32', 'amx'), undefined);
  const page = precisionMarkdown(a);
  assert.match(page, /^# Precision: what `--kv-cache-dtype`, `--lora-dtype` and `--bf16-dot` cost/);
  assert.match(page, /\| bf16 \| f32 \| f32 \| — \| model-bf16, slots f32 · KV f32, dot off \|/);
  assert.doesNotMatch(page, /`--bf16-dot` \(/);
  assert.doesNotMatch(page, /## What `--bf16-dot` buys/);
});

test('each dot path gets its own cost line: against the plain bf16 run, against PEFT, and its speed', () => {
  const a = withDotRuns();
  assert.equal(accuracyOf(a, 'bf16', 'f32', 'f32'), a.accuracy[1], 'the plain run, not a dot run');
  assert.equal(accuracyOf(a, 'bf16', 'f32', 'f32', 'vdpbf16ps'), a.accuracy[3]);
  const page = precisionMarkdown(a);
  const amx = page.split('\n').find((l) => l.startsWith('- **`--bf16-dot` (AMX) on model-bf16**')) ?? '';
  assert.match(
    amx,
    /logits within 0\.125 of the plain bf16 run, within 0\.375 of PEFT \(f32\) \(the plain bf16 run: 0\.250\)/,
  );
  assert.match(amx, /against PEFT 3\/4 greedy identical \(the plain bf16 run: 4\/4\)/);
  assert.match(amx, /prefill ×3\.75, decode ×1\.25/);
  const vdp = page.split('\n').find((l) => l.startsWith('- **`--bf16-dot` (vdpbf16ps) on model-bf16**')) ?? '';
  assert.match(vdp, /within 0\.063 of the plain bf16 run, within 0\.313 of PEFT/);
  assert.match(vdp, /prefill ×1\.45, decode ×1\.05/);
});

test('the accuracy table and the chart tell the dot rows apart; the dot section pairs rounds with off', () => {
  const a = withDotRuns();
  const page = precisionMarkdown(a);
  assert.match(page, /\| bf16 \| f32 \| f32 \| AMX \| model-bf16, slots f32 · KV f32, dot off \| 23040 \| 0\.125 \|/);
  assert.match(
    page,
    /\| bf16 \| f32 \| f32 \| vdpbf16ps \| model-bf16, slots f32 · KV f32, dot off \| 23040 \| 0\.063 \|/,
  );
  assert.match(page, /## What `--bf16-dot` buys/);
  // Paired prefill ratios of AMX: 4000 / 1000 and 3150 / 900.
  assert.match(page, /\| AMX \| 3575 \| ×3\.75 \| 3\.50–4\.00 \| 56\.0 \| ×1\.25 \| 1\.20–1\.30 \|/);
  const logits = precisionCharts(a).find((c) => c.name === 'precision-logits.svg')?.svg ?? '';
  assert.match(logits, /bf16·f32·f32·AMX/);
  assert.match(logits, /bf16·f32·f32·vdpbf16ps/);
});
