/** Adapter administration through the server's admin routes: load a directory under a name, rescan the store. */
import { useState } from 'preact/hooks';
import { html } from './html.ts';

export interface AdminActions {
  load(name: string, path: string): Promise<string>;
  rescan(): Promise<string>;
}

export function AdminPanel(props: { actions: AdminActions; message: string; setMessage: (m: string) => void }) {
  const [name, setName] = useState('');
  const [path, setPath] = useState('');
  const run = async (action: () => Promise<string>) => {
    props.setMessage('…');
    try {
      props.setMessage(await action());
    } catch (e) {
      props.setMessage(`error: ${(e as Error).message}`);
    }
  };
  const onLoad = (ev: Event) => {
    ev.preventDefault();
    void run(() => props.actions.load(name.trim(), path.trim()));
  };
  return html`
    <section class="admin" data-testid="admin">
      <form onSubmit=${onLoad}>
        <input placeholder="adapter name" value=${name} onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} name="lora_name" required />
        <input placeholder="directory on the server" value=${path} onInput=${(e: Event) => setPath((e.target as HTMLInputElement).value)} name="lora_path" required class="wide" />
        <button type="submit">load</button>
        <button type="button" onClick=${() => run(props.actions.rescan)}>rescan store</button>
      </form>
      <output data-testid="admin-message">${props.message}</output>
    </section>
  `;
}
