/** `loraplex generate` as a user runs it: the built-in demo, a JSONL batch, and clear errors. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { textResult } from '../../src/cli/generate.ts';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', '..', 'bin', 'loraplex.js');
const fixture = join(import.meta.dirname, '..', 'fixtures', 'tiny', 'llama-tied');
let cache: string;

before(async () => {
  cache = await mkdtemp(join(tmpdir(), 'loraplex-cli-'));
});
after(async () => {
  await rm(cache, { recursive: true, force: true });
});

function loraplex(args: string[]) {
  return run(process.execPath, [bin, ...args], { env: { ...process.env, LORAPLEX_CACHE: cache }, maxBuffer: 1 << 24 });
}

test('with no --model, generate runs the built-in demo through the base and every demo adapter', async () => {
  const { stdout, stderr } = await loraplex(['generate', '--json', '--max-tokens', '6', '--prompt', 'Hello']);
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.adapter),
    [null, 'demo-pirate', 'demo-poet', 'demo-chef', 'demo-robot'],
  );
  for (const l of lines) assert.equal(l.completion_tokens, 6);
  assert.ok(new Set(lines.map((l) => l.text)).size > 1, 'adapters change the output');
  assert.match(stderr, /built-in demo/);
  // deterministic: the same command again gives the same text
  const again = (await loraplex(['generate', '--json', '--max-tokens', '6', '--prompt', 'Hello'])).stdout;
  assert.equal(again, stdout);
});

test('a JSONL batch runs together and each line gets its result', async () => {
  const batch = join(cache, 'batch.jsonl');
  await writeFile(
    batch,
    [
      JSON.stringify({ prompt_ids: [1, 2, 3], adapter: 'a', max_tokens: 5 }),
      JSON.stringify({ prompt_ids: [4, 5], max_tokens: 3, temperature: 0.8, seed: 3 }),
      '',
    ].join('\n'),
  );
  const { stdout } = await loraplex([
    'generate',
    '--model',
    join(fixture, 'model'),
    '--adapter',
    `a=${join(fixture, 'adapters', 'qv-r8')}`,
    '--batch',
    batch,
    '--json',
    '--ignore-eos',
  ]);
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].adapter, 'a');
  assert.equal(lines[0].token_ids.length, 5);
  assert.equal(lines[1].token_ids.length, 3);
});

test('errors are clear and exit non-zero', async () => {
  await assert.rejects(loraplex(['generate', '--use', 'nope', '--max-tokens', '2']), (e: { stderr: string }) =>
    /--use nope: no such adapter/.test(e.stderr),
  );
  await assert.rejects(loraplex(['generate', '--adapter', '../x=/tmp']), (e: { stderr: string }) =>
    /must be letters, digits/.test(e.stderr),
  );
});

test('a --model that is missing, a file or no model directory is said as such, in the flag as given', async () => {
  const file = join(cache, 'a-file');
  await writeFile(file, 'x');
  const cases: [string, RegExp][] = [
    ['no-such-model', /--model 'no-such-model': no such directory/],
    [file, /is a file/],
    [cache, /has no config\.json/],
  ];
  for (const [model, message] of cases) {
    await assert.rejects(loraplex(['generate', '--model', model, '--prompt', 'hi']), (e: { stderr: string }) => {
      assert.match(e.stderr, message);
      assert.doesNotMatch(e.stderr, /ENOENT|tokenizer\.json: missing/);
      return true;
    });
  }
});

test('generate --chat prints the prompt and the answer apart; a completion continues its prompt', async () => {
  const chat = { label: 'base', prompt: 'Hi\nthere', chat: true };
  const result = { text: 'Hello!', completion_tokens: 2, finish_reason: 'stop' };
  assert.equal(textResult(chat, result), '── base (2 tokens, stop)\n> Hi\n> there\nHello!\n');
  assert.equal(textResult({ ...chat, prompt: 'Once', chat: false }, result), '── base (2 tokens, stop)\nOnceHello!\n');
  const { stdout } = await loraplex([
    'generate',
    '--chat',
    '--use',
    'demo-poet',
    '--max-tokens',
    '3',
    '--prompt',
    'Hello',
  ]);
  assert.match(stdout, /^── demo-poet \(3 tokens, length\)\n> Hello\n/);
});

test("a DoRA adapter generates the oracle's greedy tokens (its norms read from the model directory)", async () => {
  const expected = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8'));
  const c = expected.cases.find((x: { id: string }) => x.id === 'p5-dora-all-rslora');
  const batch = join(cache, 'dora.jsonl');
  await writeFile(
    batch,
    `${JSON.stringify({ prompt_ids: c.prompt_ids, adapter: 'd', max_tokens: 8, temperature: 0 })}\n`,
  );
  const { stdout } = await loraplex([
    'generate',
    '--model',
    join(fixture, 'model'),
    '--adapter',
    `d=${join(fixture, 'adapters', 'dora-all-rslora')}`,
    '--batch',
    batch,
    '--json',
    '--ignore-eos',
  ]);
  assert.deepEqual(JSON.parse(stdout.trim()).token_ids, c.greedy_tokens.slice(0, 8));
});
