/** The live view: the engine's totals, each model's tier and traffic, and the load over time. */
import { LineChart } from './chart.ts';
import { html } from './html.ts';
import type { DashboardState, ModelRow } from './state.ts';

const fixed = (v: number | null, digits = 0) => (v === null ? '–' : v.toFixed(digits));

/** Per adapter row, when the admin routes are usable: unload it, pin or unpin it in the host tier. */
export interface RowActions {
  unload(name: string): void;
  pin(name: string, pinned: boolean): void;
}

function Row(props: { m: ModelRow; actions: RowActions | null }) {
  const { m, actions } = props;
  return html`
    <tr data-model=${m.id} class=${m.error ? 'failed' : ''}>
      <td class="name" title=${m.error ?? ''}>${m.id}</td>
      <td>${m.kind}${m.source ? html` <small>(${m.source})</small>` : null}</td>
      <td>
        <span class=${`tier tier-${m.tier ?? 'base'}`} data-field="tier">${m.tier ?? 'resident'}</span>
        ${m.pinned ? html` <small data-field="pinned" title="kept in the host tier">pinned</small>` : null}
      </td>
      <td data-field="version">${m.version ?? '–'}</td>
      <td data-field="rank">${m.rank ?? '–'}</td>
      <td class="num" data-field="running">${m.running}</td>
      <td class="num" data-field="waiting">${m.waiting}</td>
      <td class="num" data-field="requests">${m.requests}</td>
      <td class="num" data-field="tokens">${m.tokens}</td>
      <td class="num" data-field="tokens-per-second">${fixed(m.tokensPerSecond, 1)}</td>
      <td class="num" data-field="ttft">${fixed(m.ttftMs)}</td>
      ${
        actions
          ? html`<td>${
              m.kind === 'adapter'
                ? html`<button class="small" data-action="pin" onClick=${() => actions.pin(m.id, !m.pinned)}>${m.pinned ? 'unpin' : 'pin'}</button>
                    <button class="small" data-action="unload" onClick=${() => actions.unload(m.id)}>unload</button>`
                : null
            }</td>`
          : null
      }
    </tr>
  `;
}

export function LiveView(props: { state: DashboardState; actions: RowActions | null }) {
  const { state } = props;
  const e = state.engine;
  const kv = state.history.map((s) => s.kvUse * 100);
  const running = state.history.map((s) => s.running);
  const waiting = state.history.map((s) => s.waiting);
  const queueMax = Math.max(4, ...running, ...waiting);
  return html`
    <section class="live">
      <div class="totals" data-testid="totals">
        <div><b data-field="running">${e?.running ?? 0}</b> running</div>
        <div><b data-field="waiting">${e?.waiting ?? 0}</b> waiting</div>
        <div><b>${e ? `${e.kvBlocksUsed} / ${e.kvBlocksTotal}` : '–'}</b> KV blocks</div>
        <div><b>${e ? `${e.adapterCache.slotsUsed} / ${e.adapterCache.slotsTotal}` : '–'}</b> slots</div>
        <div><b>${e ? `${e.adapterCache.hostUsed} / ${e.adapterCache.hostTotal}` : '–'}</b> host cache</div>
        <div><b>${state.maxModelLen}</b> max model len</div>
      </div>
      <div class="charts">
        <${LineChart} title="KV cache use" series=${[{ name: 'used', values: kv, className: 's-kv' }]} max=${100} unit="%" digits=${1} testId="chart-kv" />
        <${LineChart}
          title="Queue"
          series=${[
            { name: 'running', values: running, className: 's-running' },
            { name: 'waiting', values: waiting, className: 's-waiting' },
          ]}
          max=${queueMax}
          unit=""
          digits=${0}
          testId="chart-queue"
        />
      </div>
      <table class="models" data-testid="models">
        <thead>
          <tr>
            <th>model</th><th>kind</th><th>tier</th><th>version</th><th>rank</th>
            <th class="num">running</th><th class="num">waiting</th><th class="num">requests</th>
            <th class="num">tokens</th><th class="num">tok/s</th><th class="num">TTFT ms</th>
            ${props.actions ? html`<th></th>` : null}
          </tr>
        </thead>
        <tbody>
          ${state.models.map((m) => html`<${Row} key=${m.id} m=${m} actions=${props.actions} />`)}
        </tbody>
      </table>
      <p class="note">
        Per model: waiting until the first token, then running; tok/s over the last 10 s; TTFT the median of the
        last 16 requests.
      </p>
    </section>
  `;
}
