/** docs/precision.md, written from the artifact alone: every figure on the page is one the run measured. */
import type { KvDtype } from '../../src/backends/types.ts';
import type { LoraDtype } from '../../src/kernels/types.ts';
import { median } from '../util.ts';
import type { CaseResult } from './accuracy.ts';
import type { DotPath } from './dot-path.ts';
import {
  type AccuracyRun,
  type AgreementSummary,
  accuracyOf,
  DOT_PATH_NAME,
  dotPathOf,
  dotThroughputOf,
  type PrecisionArtifact,
  settingLabel,
  summarize,
  throughputOf,
} from './summary.ts';

export { type AccuracyRun, PEFT_BF16_KV, PRECISION_ARTIFACT, type PrecisionArtifact } from './summary.ts';

function logit(x: number): string {
  return x < 0.01 ? x.toExponential(1) : x.toFixed(3);
}

function bytes(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : n >= 1e4 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

function divergences(s: AgreementSummary): string {
  if (s.divergences.length === 0) return '—';
  return s.divergences
    .map((d) => `${d.id} @${d.step} (${d.margin === null ? '?' : d.margin.toPrecision(2)})`)
    .join(', ');
}

function agreement(s: AgreementSummary, against: string): string {
  const drift =
    s.worstMarginDrift === null
      ? ''
      : `; top-2 margins moved by at most ${logit(s.worstMarginDrift)} before any divergence`;
  const where =
    s.largestDivergentMargin === null
      ? ''
      : ` (each divergence at a near-tie: ${against} margin ≤ ${s.largestDivergentMargin.toPrecision(2)})`;
  return `${s.identical}/${s.total} greedy sequences identical${where}${drift}`;
}

function decode(a: PrecisionArtifact, lora: LoraDtype, kv: KvDtype): string {
  const t = throughputOf(a, lora, kv);
  return t ? `decode ×${t.ratio.toFixed(2)}` : 'decode not measured';
}

function peftKvNote(a: PrecisionArtifact): string {
  if (!a.peftBf16Kv) return '';
  const worst = Math.max(...Object.values(a.peftBf16Kv.cases));
  return (
    ` PEFT itself, with keys and values rounded to bf16 the same way (\`bench/precision/peft_bf16_kv.py\`), ` +
    `moves its logits by up to ${logit(worst)}: the error is the format’s, not the engine’s (per case below).`
  );
}

function costLines(a: PrecisionArtifact): string[] {
  const lines: string[] = [];
  const ref = accuracyOf(a, 'f32', 'f32', 'f32');
  const t32 = throughputOf(a, 'f32', 'f32');
  const kv = accuracyOf(a, 'f32', 'f32', 'bf16');
  if (ref && kv) {
    const s = summarize(kv.cases);
    lines.push(
      `- **\`--kv-cache-dtype bf16\`** (f32 model, f32 slots): memory per token ${bytes(ref.kvBytesPerToken)} → ` +
        `${bytes(kv.kvBytesPerToken)}, last-position logits within ${logit(s.worst)} of PEFT (f32 KV: ` +
        `${logit(summarize(ref.cases).worst)}), ${agreement(s, 'oracle')}, ${decode(a, 'f32', 'bf16')}.` +
        peftKvNote(a),
    );
  }
  for (const lora of ['bf16', 'f16', 'int8'] as const) {
    const run = accuracyOf(a, 'f32', lora, 'f32');
    const t = throughputOf(a, lora, 'f32');
    if (!run) continue;
    const s = summarize(run.cases);
    const slot =
      t && t32
        ? `slot bytes per rank-16 adapter ${bytes(t32.slotBytesPerAdapter)} → ${bytes(t.slotBytesPerAdapter)}, `
        : '';
    lines.push(
      `- **\`--lora-dtype ${lora}\`** (f32 model, f32 KV): ${slot}last-position logits within ${logit(s.worst)} of ` +
        `PEFT, ${agreement(s, 'oracle')}, ${decode(a, lora, 'f32')}.`,
    );
  }
  const bf16Ref = accuracyOf(a, 'bf16', 'f32', 'f32');
  if (bf16Ref?.vsOracle) {
    const w = summarize(bf16Ref.vsOracle);
    lines.push(
      `- **model-bf16 itself** (f32 slots, f32 KV) against the f32 PEFT oracle, for scale: logits within ` +
        `${logit(w.worst)}, ${w.identical}/${w.total} greedy sequences identical. The bf16 checkpoint has no oracle of ` +
        'its own, so the rows below compare model-bf16 runs with this run.',
    );
    for (const [lora, kvDtype, name] of [
      ['bf16', 'f32', '`--lora-dtype auto` (= bf16 on this checkpoint)'],
      ['f16', 'f32', '`--lora-dtype f16`'],
      ['int8', 'f32', '`--lora-dtype int8`'],
      ['f32', 'bf16', '`--kv-cache-dtype bf16`'],
    ] as const) {
      const run = accuracyOf(a, 'bf16', lora, kvDtype);
      if (!run) continue;
      const s = summarize(run.cases);
      lines.push(
        `- **${name} on model-bf16**: logits within ${logit(s.worst)} of the f32-slot, f32-KV run, ` +
          `${agreement(s, 'that run’s')}.`,
      );
    }
    lines.push(...dotCostLines(a, bf16Ref));
  }
  return lines;
}

function speed(a: PrecisionArtifact, path: DotPath): string {
  const t = dotThroughputOf(a, path);
  return t
    ? `prefill ×${t.prefillRatio.toFixed(2)}, decode ×${t.decodeRatio.toFixed(2)} (tokens/s against the dot path off)`
    : 'speed not measured';
}

/** One line per dot path measured: against the plain model-bf16 run, against PEFT, and what it buys. */
function dotCostLines(a: PrecisionArtifact, plain: AccuracyRun): string[] {
  const plainOracle = summarize(plain.vsOracle ?? []);
  return (['amx', 'vdpbf16ps'] as const).flatMap((path) => {
    const run = accuracyOf(a, 'bf16', 'f32', 'f32', path);
    if (!run?.vsOracle) return [];
    const s = summarize(run.cases);
    const o = summarize(run.vsOracle);
    return [
      `- **\`--bf16-dot\` (${DOT_PATH_NAME[path]}) on model-bf16** (f32 slots, f32 KV; activations rounded to bf16): ` +
        `logits within ${logit(s.worst)} of the plain bf16 run, within ${logit(o.worst)} of PEFT (f32) (the plain ` +
        `bf16 run: ${logit(plainOracle.worst)}), ${agreement(s, 'the plain run’s')}; against PEFT ${o.identical}/` +
        `${o.total} greedy identical (the plain bf16 run: ${plainOracle.identical}/${plainOracle.total}); ${speed(a, path)}.`,
      ...slotLine(a, path, plainOracle),
    ];
  });
}

/** With bf16 slots (what `--lora-dtype auto` gives a bf16 checkpoint), AMX also runs the LoRA shrink. */
function slotLine(a: PrecisionArtifact, path: DotPath, plainOracle: ReturnType<typeof summarize>): string[] {
  const run = accuracyOf(a, 'bf16', 'bf16', 'f32', path);
  if (!run?.vsOracle) return [];
  const s = summarize(run.cases);
  const o = summarize(run.vsOracle);
  return [
    `- **\`--bf16-dot\` (${DOT_PATH_NAME[path]}) with \`--lora-dtype auto\` (bf16 slots) on model-bf16**, as a bf16 ` +
      'checkpoint is served with the flag (f32 KV; activations rounded to bf16, and for the LoRA shrink too, which ' +
      `then runs on AMX tiles): logits within ${logit(s.worst)} of the plain bf16 run (f32 slots), within ` +
      `${logit(o.worst)} of PEFT (f32) (the plain bf16 run: ${logit(plainOracle.worst)}), ${agreement(s, 'the plain run’s')}; ` +
      `against PEFT ${o.identical}/${o.total} greedy identical.`,
  ];
}

function accuracyTable(a: PrecisionArtifact): string[] {
  const rows = a.accuracy.map((r) => {
    const s = summarize(r.cases);
    const against = r.reference === 'oracle' ? 'PEFT (f32)' : 'model-bf16, slots f32 · KV f32, dot off';
    const dot = dotPathOf(r);
    return `| ${r.model} | ${r.loraDtype} | ${r.kvCacheDtype} | ${dot === 'off' ? '—' : DOT_PATH_NAME[dot]} | ${against} | ${r.kvBytesPerToken} | ${logit(s.worst)} | ${logit(s.median)} | ${s.worstMarginDrift === null ? '—' : logit(s.worstMarginDrift)} | ${s.identical}/${s.total} | ${divergences(s)} |`;
  });
  return [
    '| model | slots | KV | bf16 dot | against | KV bytes/token | worst \\|Δlogit\\| | median \\|Δlogit\\| | worst \\|Δ top-2 margin\\| | greedy identical | divergences: case @step (reference margin) |',
    '| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
  ];
}

function caseCell(c: CaseResult): string {
  const tokens = c.identical ? '=' : `≠@${c.firstDivergence}`;
  return `${logit(c.maxAbsDiff)} ${tokens}`;
}

function perCaseTable(runs: AccuracyRun[], peft: Record<string, number> | null): string[] {
  if (runs.length === 0) return [];
  const extra = peft ? ' PEFT, K/V rounded to bf16 |' : '';
  const header = `| case | ${runs.map((r) => settingLabel(r)).join(' | ')} |${extra}`;
  const rows = runs[0].cases.map((c, i) => {
    const cells = runs.map((r) => caseCell(r.cases[i])).join(' | ');
    return `| ${c.id} | ${cells} |${peft ? ` ${peft[c.id] === undefined ? '—' : logit(peft[c.id])} |` : ''}`;
  });
  return [header, `| --- |${runs.map(() => ' ---: |').join('')}${peft ? ' ---: |' : ''}`, ...rows];
}

function throughputTable(a: PrecisionArtifact): string[] {
  const base = a.throughput.results[0].roundTokensPerSecond;
  const rows = a.throughput.results.map((r) => {
    const paired = r.roundTokensPerSecond.map((v, i) => v / base[i]);
    const range = `${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}`;
    return (
      `| ${r.loraDtype} | ${r.kvCacheDtype} | ${r.kvBytesPerToken} | ${bytes(r.slotBytesPerAdapter)} | ` +
      `${r.medianTokensPerSecond.toFixed(1)} | ×${r.ratio.toFixed(2)} | ${range} | ` +
      `${r.roundTokensPerSecond.map((v) => v.toFixed(1)).join(', ')} |`
    );
  });
  return [
    '| slots | KV | KV bytes/token | slot bytes/adapter | decode tok/s (median) | vs f32/f32 (median of paired rounds) | paired ratios, min–max | each round |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
  ];
}

function ratioRange(values: number[], base: number[]): string {
  const paired = values.map((v, i) => v / base[i]);
  return `${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)}`;
}

/** The --bf16-dot section: absent when the run did not measure it (--quick, older artifacts). */
function dotSection(a: PrecisionArtifact): string[] {
  const d = a.dotThroughput;
  if (!d || d.results.length < 2) return [];
  const w = d.workload;
  const off = d.results[0];
  const rows = d.results.map(
    (r) =>
      `| ${DOT_PATH_NAME[r.path]} | ${median(r.prefillTokensPerSecond).toFixed(0)} | ×${r.prefillRatio.toFixed(2)} | ` +
      `${ratioRange(r.prefillTokensPerSecond, off.prefillTokensPerSecond)} | ${median(r.decodeTokensPerSecond).toFixed(1)} | ` +
      `×${r.decodeRatio.toFixed(2)} | ${ratioRange(r.decodeTokensPerSecond, off.decodeTokensPerSecond)} |`,
  );
  return [
    '## What `--bf16-dot` buys',
    '',
    'The decode comparison above runs the f32 model, where `--bf16-dot` does nothing (it changes only bf16 weights). ' +
      `On model-bf16 (f32 slots, f32 KV), one engine: each round every dot path in turn prefills ${w.sequences} fresh ` +
      `prompts of ${w.promptTokens} tokens in one step (${w.sequences * w.promptTokens} rows through every projection), ` +
      `over ${w.adapters} synthetic rank-${w.rank} adapters, then decodes ${w.decodeSteps} steps and drops the batch; ` +
      `${w.rounds} rounds after a warm-up, the starting path rotating. Ratios are medians of each round’s figure over ` +
      'the dot path off in the same round.',
    '',
    '| bf16 dot | prefill tok/s (median) | vs off | paired ratios, min–max | decode tok/s (median) | vs off | paired ratios, min–max |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
  ];
}

export function precisionMarkdown(a: PrecisionArtifact): string {
  const w = a.throughput.workload;
  const n = a.accuracy[0]?.cases.length ?? 0;
  return [
    '# Precision: what `--kv-cache-dtype`, `--lora-dtype` and `--bf16-dot` cost',
    '',
    `Measured on ${a.model} by \`${a.command}\` (${a.generated.slice(0, 16).replace('T', ' ')} UTC, ${a.machine.isa}, ` +
      `${a.machine.threads} threads, ${a.seconds.toFixed(0)} s). This page is written by the script from ` +
      '[figures/precision/precision.json](figures/precision/precision.json); nothing on it is typed by hand.',
    '',
    `The oracle (\`bash oracle/run.sh smollm2\`, \`oracle/smollm2.py\`) is transformers + PEFT in f32 on the f32 model: ${n} ` +
      'cases (prompts with the base and with each of the set’s adapters), logits at the last prompt position, 64 greedy ' +
      'tokens (EOS ignored) and the top-2 margin at each greedy step. A divergent greedy sequence is reported with its ' +
      'first differing step and the reference’s margin there: a flip at a margin smaller than the logit error is a ' +
      'near-tie going the other way, not a wrong model.',
    '',
    '## What each setting costs',
    '',
    ...costLines(a),
    '',
    'Memory: the KV cache holds keys and values of every layer (SmolLM2: 30 layers × 3 KV heads × 64), so bf16 halves ' +
      'the bytes per token and the bytes attention reads. Slots hold each resident adapter’s A and B.',
    '',
    '## Accuracy',
    '',
    ...accuracyTable(a),
    '',
    'Worst |Δ top-2 margin|: over every case and every greedy step before its first divergence, how far the setting ' +
      'moved the gap between the two leading logits (the engine’s own step logits against the reference’s recorded ' +
      'margins). It is what a greedy choice depends on: a step can flip only where its margin is smaller than this ' +
      'drift, so the drift, not the worst |Δlogit| over the whole vocabulary, sets how close to a tie a flip can happen.',
    '',
    'Per case (f32 model, against PEFT): worst |Δlogit| at the last prompt position; `=` all 64 greedy tokens identical, ' +
      '`≠@k` first different at step k.' +
      (a.peftBf16Kv
        ? ' The last column is PEFT’s own last-position error with keys and values rounded to bf16 after RoPE ' +
          `(\`bench/precision/peft_bf16_kv.py\`, ${a.peftBf16Kv.generated.slice(0, 10)}).`
        : ''),
    '',
    ...perCaseTable(
      a.accuracy.filter((r) => r.model === 'f32'),
      a.peftBf16Kv?.cases ?? null,
    ),
    '',
    '![worst |Δlogit| per setting](figures/precision/precision-logits.svg)',
    '',
    '## Decode throughput',
    '',
    `${w.sequences} sequences over ${w.adapters} distinct synthetic adapters (rank ${w.rank}, all seven projections), ` +
      `prompts of ${w.promptTokens} tokens; the f32 model. Each setting's engine is built and prefilled first, then ` +
      `the settings take turns decoding ${w.stepsPerRound} steps each, ${w.rounds} rounds (the starting setting ` +
      'rotates). The ratio is the median over rounds of a setting’s tokens/s divided by f32/f32’s in the same round, ' +
      'so load on the machine that moves all settings alike cancels; the min–max of the paired ratios shows what ' +
      'does not cancel (other work on a shared machine), and a median ratio inside that spread is no measured cost.',
    '',
    ...throughputTable(a),
    '',
    '![decode tokens/s relative to f32 slots, f32 KV](figures/precision/precision-decode.svg)',
    '',
    ...dotSection(a),
    '## Reproduce',
    '',
    '```',
    'bash oracle/run.sh smollm2          # the oracle set, ~/.cache/loraplex/smollm2',
    'npm run bench:precision             # this page (--quick: f32 model only, shorter run, to artifacts/)',
    '```',
    '',
    'The live checks that pin these settings: `test/live/smollm2.live.ts` (bf16 KV within its stated tolerance, ' +
      'greedy tokens may diverge only at a near-tie of the oracle).',
    '',
  ].join('\n');
}
