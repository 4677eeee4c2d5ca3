/**
 * The dashboard in a real browser (headless Chromium) against the demo model served on loopback: the key
 * prompt, the live view following requests as they wait, run and finish (the engine held between steps, so
 * each state lasts until the test moves on), adapter administration, and the A/B playground's five streamed
 * columns checked against the API's own answers. Screenshots: see browser.ts.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import type { Browser, Page } from 'playwright-core';
import { type DemoPaths, ensureDemo } from '../../src/demo/demo-model.ts';
import { AsyncEngine } from '../../src/engine/async-engine.ts';
import { loadTextCodec } from '../../src/tokenizer/text-codec.ts';
import { testApp } from '../server/loopback.ts';
import { browserSkip, launch, screenshotDir, shows, textOf } from './browser.ts';

const API_KEY = 'ui-test-api-key';
const ADMIN_KEY = 'ui-test-admin-key';
const ADAPTERS = ['demo-pirate', 'demo-poet', 'demo-chef', 'demo-robot'];

const row = (model: string, field: string) => `tr[data-model="${model}"] [data-field="${field}"]`;
const column = (model: string, field: string) => `[data-column="${model}"] [data-field="${field}"]`;

describe('the dashboard in Chromium', { skip: browserSkip() }, () => {
  let cache = '';
  let demo: DemoPaths;
  let store = '';
  let engine: AsyncEngine;
  let app: FastifyInstance;
  let address = '';
  let client: OpenAI;
  let browser: Browser;
  let page: Page;
  let shots = '';

  before(async () => {
    cache = await mkdtemp(join(tmpdir(), 'loraplex-ui-'));
    demo = await ensureDemo(cache);
    store = join(cache, 'store');
    await mkdir(store);
    const build = { modelDir: demo.modelDir, adapters: demo.adapters, loraDir: store, kvCacheTokens: 8192 };
    engine = await AsyncEngine.start(build);
    app = testApp(engine, await loadTextCodec(demo.modelDir), {
      baseModel: 'demo-base',
      apiKey: API_KEY,
      admin: { allowedRoots: [cache], adminKey: ADMIN_KEY },
      ui: true,
    });
    address = await app.listen({ host: '127.0.0.1', port: 0 });
    client = new OpenAI({ baseURL: `${address}/v1`, apiKey: API_KEY, maxRetries: 0 });
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    shots = await screenshotDir();
  });

  after(async () => {
    await browser?.close();
    await app?.close();
    await engine?.close();
    await rm(cache, { recursive: true, force: true });
  });

  test('asks for the API key, then lists the base and every adapter with its tier and rank', async () => {
    await page.goto(address);
    await shows(page, 'form.keys.needed');
    await page.fill('input[name="api_key"]', API_KEY);
    await page.fill('input[name="admin_key"]', ADMIN_KEY);
    await page.click('form.keys button[type="submit"]');
    await shows(page, `${row('demo-robot', 'rank')}:text-is("32")`);
    assert.equal(await textOf(page, '[data-testid="model"]'), 'demo-base');
    assert.equal(await textOf(page, row('demo-base', 'tier')), 'resident');
    for (const [name, rank] of [
      ['demo-pirate', '8'],
      ['demo-poet', '16'],
      ['demo-chef', '4'],
    ]) {
      assert.equal(await textOf(page, row(name, 'rank')), rank);
      assert.match(await textOf(page, row(name, 'tier')), /^(store|host|slot)$/);
    }
  });

  test('the live view follows requests per model as they wait, run and finish', async () => {
    engine.holdSteps(0);
    const body = { prompt: 'The ship sailed', max_tokens: 12, temperature: 0, ignore_eos: true } as const;
    const requests = [
      client.completions.create({ ...body, model: 'demo-pirate' }),
      client.completions.create({ ...body, model: 'demo-pirate' }),
      client.completions.create({ ...body, model: 'demo-base' }),
    ];
    try {
      await shows(page, `${row('demo-pirate', 'waiting')}:text-is("2")`);
      await shows(page, `${row('demo-base', 'waiting')}:text-is("1")`);
      // One step: every prompt is prefilled and gets its first token; the engine holds again.
      engine.holdSteps(1);
      await shows(page, `${row('demo-pirate', 'running')}:text-is("2")`);
      await shows(page, `${row('demo-pirate', 'waiting')}:text-is("0")`);
      await shows(page, `${row('demo-pirate', 'tier')}:text-is("slot")`);
      await shows(page, '[data-testid="totals"] [data-field="running"]:text-is("3")');
      // The charts' latest sample shows the held sequences' KV blocks.
      await shows(page, '[data-testid="chart-kv"] .legend:not(:text-is("used 0.0%"))');
      await page.screenshot({ path: join(shots, 'ui-live.png'), fullPage: true });
    } finally {
      engine.holdSteps(null);
    }
    await Promise.all(requests);
    await shows(page, `${row('demo-pirate', 'requests')}:text-is("2")`);
    await shows(page, `${row('demo-pirate', 'tokens')}:text-is("24")`);
    await shows(page, `${row('demo-base', 'tokens')}:text-is("12")`);
    assert.equal(await textOf(page, row('demo-pirate', 'running')), '0');
    assert.ok(Number(await textOf(page, row('demo-pirate', 'tokens-per-second'))) > 0);
    assert.ok(Number(await textOf(page, row('demo-pirate', 'ttft'))) >= 0);
    assert.equal(await textOf(page, row('demo-chef', 'requests')), '0');
    const points = await page.locator('[data-testid="chart-queue"] path.line').first().getAttribute('data-points');
    assert.ok(Number(points) >= 2, `queue chart points: ${points}`);
  });

  test('loads a directory under a new name, pins and unpins it, unloads it, and rescans the store', async () => {
    const pirate = demo.adapters.find((a) => a.name === 'demo-pirate')!.dir;
    await page.fill('input[name="lora_name"]', 'pirate-copy');
    await page.fill('input[name="lora_path"]', pirate);
    await page.click('[data-testid="admin"] button[type="submit"]');
    await shows(
      page,
      `[data-testid="admin-message"]:text-is("Success: LoRA adapter 'pirate-copy' added successfully.")`,
    );
    await shows(page, `${row('pirate-copy', 'rank')}:text-is("8")`);

    await page.click('tr[data-model="pirate-copy"] button[data-action="pin"]');
    await shows(page, `${row('pirate-copy', 'pinned')}:text-is("pinned")`);
    await shows(page, 'tr[data-model="pirate-copy"] button[data-action="pin"]:text-is("unpin")');
    assert.equal(JSON.parse(await textOf(page, '[data-testid="admin-message"]')).pinned, true);
    await page.click('tr[data-model="pirate-copy"] button[data-action="pin"]');
    await page.waitForSelector(row('pirate-copy', 'pinned'), { state: 'detached', timeout: 60_000 });
    await shows(page, 'tr[data-model="pirate-copy"] button[data-action="pin"]:text-is("pin")');

    await page.click('tr[data-model="pirate-copy"] button[data-action="unload"]');
    await shows(page, `[data-testid="admin-message"]:has-text("'pirate-copy' removed")`);
    await page.waitForSelector('tr[data-model="pirate-copy"]', { state: 'detached', timeout: 60_000 });

    await cp(demo.adapters.find((a) => a.name === 'demo-chef')!.dir, join(store, 'chef-stored'), { recursive: true });
    await page.click('[data-testid="admin"] button[type="button"]');
    await shows(page, '[data-testid="admin-message"]:has-text("chef-stored")');
    await shows(page, `${row('chef-stored', 'tier')}:text-is("store")`);
    assert.deepEqual(JSON.parse(await textOf(page, '[data-testid="admin-message"]')), {
      op: 'rescan',
      added: ['chef-stored'],
      removed: [],
      changed: [],
    });
  });

  test('the A/B playground streams the base and four adapters side by side, with figures and divergence', async () => {
    const prompt = 'Once upon a time';
    const maxTokens = 20;
    for (const m of ['demo-base', ...ADAPTERS]) {
      assert.ok(await page.isChecked(`input[name="model"][value="${m}"]`), `${m} is selected`);
    }
    // Five columns at most: a sixth model cannot be picked.
    assert.equal(await page.isChecked('input[name="model"][value="chef-stored"]'), false);
    assert.equal(await page.isDisabled('input[name="model"][value="chef-stored"]'), true);
    await page.fill('textarea[name="prompt"]', prompt);
    await page.fill('input[name="max_tokens"]', String(maxTokens));
    await page.click('[data-testid="playground"] button[type="submit"]');
    for (const m of ['demo-base', ...ADAPTERS]) await shows(page, `[data-column="${m}"][data-status="done"]`);
    await page.screenshot({ path: join(shots, 'ui-playground.png'), fullPage: true });

    // The API's own answers to the same requests: the columns show exactly these tokens.
    const answers = new Map<string, string[]>();
    for (const m of ['demo-base', ...ADAPTERS]) {
      const r = await client.completions.create({
        model: m,
        prompt,
        max_tokens: maxTokens,
        temperature: 0,
        logprobs: 0,
      });
      answers.set(m, r.choices[0].logprobs!.tokens!);
    }
    const base = answers.get('demo-base')!;
    let diverging = 0;
    for (const m of ['demo-base', ...ADAPTERS]) {
      const tokens = answers.get(m)!;
      assert.equal(await textOf(page, column(m, 'tokens')), String(tokens.length), m);
      const shown = await page.locator(`[data-column="${m}"] .tok`).allTextContents();
      assert.deepEqual(shown, tokens, `${m}: the streamed tokens`);
      assert.match(await textOf(page, column(m, 'ttft')), /^\d+ ms$/, `${m} TTFT`);
      assert.ok(Number(await textOf(page, column(m, 'tokens-per-second'))) > 0, `${m} tok/s`);
      if (m === 'demo-base') {
        assert.equal(await textOf(page, column(m, 'divergence')), 'reference');
        continue;
      }
      let at = tokens.findIndex((t, i) => t !== base[i]);
      if (at < 0 && tokens.length !== base.length) at = Math.min(tokens.length, base.length);
      assert.equal(await textOf(page, column(m, 'divergence')), at < 0 ? '–' : `at ${at}`, `${m} divergence`);
      if (at >= 0) {
        diverging++;
        const marked = await page.locator(`[data-column="${m}"] .tok.diverged`).count();
        assert.equal(marked, tokens.length - at, `${m}: tokens marked from the divergence on`);
      }
    }
    assert.ok(diverging > 0, 'the demo adapters change the text');
  });
  test('chat mode: a system and a user message to the base and one adapter, as the chat API answers them', async () => {
    for (const m of ['demo-pirate', 'demo-chef', 'demo-robot']) await page.uncheck(`input[name="model"][value="${m}"]`);
    await page.check('input[name="mode"][value="chat"]');
    await page.fill('textarea[name="system"]', 'You are terse.');
    await page.fill('textarea[name="prompt"]', 'Name a colour.');
    await page.fill('input[name="max_tokens"]', '12');
    await page.click('[data-testid="playground"] button[type="submit"]');
    await shows(page, '[data-column="demo-poet"][data-status="done"]');
    await shows(page, '[data-column="demo-base"][data-status="done"]');
    assert.equal(await page.locator('[data-column]').count(), 2);
    for (const m of ['demo-base', 'demo-poet']) {
      const r = await client.chat.completions.create({
        model: m,
        messages: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: 'Name a colour.' },
        ],
        max_tokens: 12,
        temperature: 0,
        logprobs: true,
      });
      const tokens = r.choices[0].logprobs!.content!.map((c) => c.token);
      assert.deepEqual(await page.locator(`[data-column="${m}"] .tok`).allTextContents(), tokens, m);
      assert.equal(await textOf(page, column(m, 'tokens')), String(tokens.length));
    }
  });
});
