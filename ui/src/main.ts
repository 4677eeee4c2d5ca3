/**
 * The dashboard page: keys, the live view (polled from /ui/api/state every second), adapter administration
 * when the server has the admin routes, and the A/B playground.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { AdminPanel } from './admin-panel.ts';
import { ApiError, getJson, type Keys, loadKeys, post, saveKeys } from './api.ts';
import { html } from './html.ts';
import { LiveView } from './live-view.ts';
import { Playground } from './playground.ts';
import type { DashboardState } from './state.ts';

const POLL_MS = 1000;

function KeyBar(props: { keys: Keys; onSave: (k: Keys) => void; needed: boolean }) {
  const [api, setApi] = useState(props.keys.api);
  const [admin, setAdmin] = useState(props.keys.admin);
  const submit = (e: Event) => {
    e.preventDefault();
    props.onSave({ api, admin });
  };
  return html`
    <form class=${`keys ${props.needed ? 'needed' : ''}`} onSubmit=${submit} data-testid="keys">
      ${props.needed ? html`<span class="ask">This server needs its API key.</span>` : null}
      <input type="password" name="api_key" placeholder="API key" value=${api} onInput=${(e: Event) => setApi((e.target as HTMLInputElement).value)} autocomplete="off" />
      <input type="password" name="admin_key" placeholder="admin key (optional)" value=${admin} onInput=${(e: Event) => setAdmin((e.target as HTMLInputElement).value)} autocomplete="off" />
      <button type="submit">use keys</button>
    </form>
  `;
}

function App() {
  const [keys, setKeys] = useState<Keys>(loadKeys);
  const [state, setState] = useState<DashboardState | null>(null);
  const [problem, setProblem] = useState<{ status: number; message: string } | null>(null);
  const [adminMessage, setAdminMessage] = useState('');
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const abort = new AbortController();
    let timer = 0;
    const poll = async () => {
      try {
        setState(await getJson<DashboardState>('/ui/api/state', keys.api, abort.signal));
        setProblem(null);
      } catch (e) {
        if (abort.signal.aborted) return;
        const status = e instanceof ApiError ? e.status : 0;
        setProblem({ status, message: (e as Error).message });
        if (status === 401) setState(null); // nothing shown to a wrong key
      }
      if (!abort.signal.aborted) timer = window.setTimeout(poll, POLL_MS);
    };
    void poll();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [keys, tick]);

  const useKeys = (k: Keys) => {
    saveKeys(k);
    setKeys(k);
  };
  // The admin routes take the admin key when the server has one, else the API key.
  const adminKey = state?.admin.ownKey ? keys.admin : keys.api;
  const refresh = (message: string) => {
    setTick((t) => t + 1);
    return message;
  };
  const actions = {
    load: async (name: string, path: string) =>
      refresh(await post('/v1/load_lora_adapter', adminKey, { lora_name: name, lora_path: path })),
    rescan: async () => refresh(await post('/v1/rescan_lora_adapters', adminKey, {})),
  };
  const rowAction = async (path: string, body: unknown) => {
    try {
      setAdminMessage(refresh(await post(path, adminKey, body)));
    } catch (e) {
      setAdminMessage(`error: ${(e as Error).message}`);
    }
  };
  const rowActions = {
    unload: (name: string) => rowAction('/v1/unload_lora_adapter', { lora_name: name }),
    pin: (name: string, pinned: boolean) => rowAction('/v1/pin_lora_adapter', { lora_name: name, pinned }),
  };
  const adminOn = state?.admin.enabled === true && (!state.admin.ownKey || keys.admin !== '');

  return html`
    <header class="top">
      <h1>loraplex</h1>
      <span class="model" data-testid="model">${state ? state.model : ''}</span>
      <${KeyBar} keys=${keys} onSave=${useKeys} needed=${problem?.status === 401} />
    </header>
    ${problem ? html`<p class="problem" data-testid="problem">${problem.status === 503 ? 'The server is loading (or draining): ' : ''}${problem.message}</p>` : null}
    ${
      state
        ? html`
          <h2>Live</h2>
          <${LiveView} state=${state} actions=${adminOn ? rowActions : null} />
          ${adminOn ? html`<h2>Adapters</h2><${AdminPanel} actions=${actions} message=${adminMessage} setMessage=${setAdminMessage} />` : null}
          <h2>A/B playground</h2>
          <${Playground} models=${state.models.filter((m) => !m.error).map((m) => m.id)} apiKey=${keys.api} />
        `
        : null
    }
  `;
}

render(html`<${App} />`, document.getElementById('app')!);
