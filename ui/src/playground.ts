/**
 * The A/B playground: one prompt (or chat) sent to the base and up to four adapters at once, streamed side by
 * side with shared sampling settings. The first selected model is the reference; every other column marks
 * where its tokens part from the reference's.
 */
import { useRef, useState } from 'preact/hooks';
import { type ColumnState, runColumn, waitingColumn } from './column-run.ts';
import type { Settings } from './completion-request.ts';
import { firstDivergence } from './divergence.ts';
import { html } from './html.ts';

export const MAX_COLUMNS = 5;

const fixed = (v: number | null, digits = 0) => (v === null ? '–' : v.toFixed(digits));

function Column(props: { c: ColumnState; reference: ColumnState | null }) {
  const { c, reference } = props;
  const done = (s: ColumnState) => s.status === 'done' || s.status === 'error';
  const at = reference
    ? firstDivergence({ tokens: reference.tokens, done: done(reference) }, { tokens: c.tokens, done: done(c) })
    : null;
  return html`
    <article class=${`column ${c.status}`} data-column=${c.model} data-status=${c.status}>
      <header>
        <b>${c.model}</b>
        <span class="status">${c.status}${c.finishReason ? ` (${c.finishReason})` : ''}</span>
      </header>
      <dl class="figures">
        <div><dt>TTFT</dt><dd data-field="ttft">${fixed(c.ttftMs)} ms</dd></div>
        <div><dt>tok/s</dt><dd data-field="tokens-per-second">${fixed(c.tokensPerSecond, 1)}</dd></div>
        <div><dt>tokens</dt><dd data-field="tokens">${c.tokens.length}</dd></div>
        <div>
          <dt>diverges</dt>
          <dd data-field="divergence">${reference ? (at === null ? '–' : `at ${at}`) : 'reference'}</dd>
        </div>
      </dl>
      ${c.error ? html`<p class="error">${c.error}</p>` : null}
      <pre class="text">${c.tokens.map(
        (t, i) =>
          html`<span class=${at !== null && i >= at ? (i === at ? 'tok diverged first' : 'tok diverged') : 'tok'}>${t}</span>`,
      )}</pre>
    </article>
  `;
}

export function Playground(props: { models: string[]; apiKey: string }) {
  const [selected, setSelected] = useState<string[] | null>(null);
  const [settings, setSettings] = useState<Settings>({
    mode: 'prompt',
    prompt: 'Once upon a time',
    system: '',
    maxTokens: 32,
    temperature: 0,
    topP: 1,
    seed: null,
  });
  const [columns, setColumns] = useState<ColumnState[]>([]);
  const running = useRef<AbortController | null>(null);
  const chosen = (selected ?? props.models.slice(0, MAX_COLUMNS)).filter((m) => props.models.includes(m));

  const toggle = (model: string) => {
    setSelected(chosen.includes(model) ? chosen.filter((m) => m !== model) : [...chosen, model]);
  };
  const field =
    <K extends keyof Settings>(key: K, parse: (v: string) => Settings[K]) =>
    (e: Event) =>
      setSettings({ ...settings, [key]: parse((e.target as HTMLInputElement).value) });

  const run = async (ev: Event) => {
    ev.preventDefault();
    running.current?.abort();
    const abort = new AbortController();
    running.current = abort;
    const order = [...chosen];
    let latest = order.map(waitingColumn);
    setColumns(latest);
    const update = (s: ColumnState) => {
      if (running.current !== abort) return; // a newer run owns the columns now
      latest = latest.map((c) => (c.model === s.model ? s : c));
      setColumns(latest);
    };
    await Promise.all(order.map((m) => runColumn(m, settings, props.apiKey, abort.signal, update)));
    if (running.current === abort) running.current = null;
  };

  return html`
    <section class="playground" data-testid="playground">
      <form onSubmit=${run}>
        <fieldset class="models-pick">
          <legend>models (the first is the reference; at most ${MAX_COLUMNS})</legend>
          ${props.models.map(
            (m) =>
              html`<label><input type="checkbox" name="model" value=${m} checked=${chosen.includes(m)} disabled=${!chosen.includes(m) && chosen.length >= MAX_COLUMNS} onChange=${() => toggle(m)} /> ${m}</label>`,
          )}
        </fieldset>
        <fieldset class="mode">
          <label><input type="radio" name="mode" value="prompt" checked=${settings.mode === 'prompt'} onChange=${() => setSettings({ ...settings, mode: 'prompt' })} /> prompt</label>
          <label><input type="radio" name="mode" value="chat" checked=${settings.mode === 'chat'} onChange=${() => setSettings({ ...settings, mode: 'chat' })} /> chat</label>
        </fieldset>
        ${settings.mode === 'chat' ? html`<textarea name="system" rows="1" placeholder="system message (optional)" value=${settings.system} onInput=${field('system', String)} />` : null}
        <textarea name="prompt" rows="3" value=${settings.prompt} onInput=${field('prompt', String)} required />
        <fieldset class="sampling">
          <label>max tokens <input name="max_tokens" type="number" min="1" value=${settings.maxTokens} onInput=${field('maxTokens', Number)} /></label>
          <label>temperature <input name="temperature" type="number" min="0" max="2" step="0.05" value=${settings.temperature} onInput=${field('temperature', Number)} /></label>
          <label>top p <input name="top_p" type="number" min="0" max="1" step="0.05" value=${settings.topP} onInput=${field('topP', Number)} /></label>
          <label>seed <input name="seed" type="number" value=${settings.seed ?? ''} onInput=${field('seed', (v) => (v === '' ? null : Number(v)))} /></label>
          <button type="submit" disabled=${chosen.length === 0}>run</button>
          <button type="button" onClick=${() => running.current?.abort()}>stop</button>
        </fieldset>
      </form>
      <div class="columns" data-testid="columns">
        ${columns.map((c, i) => html`<${Column} key=${c.model} c=${c} reference=${i === 0 ? null : columns[0]} />`)}
      </div>
    </section>
  `;
}
