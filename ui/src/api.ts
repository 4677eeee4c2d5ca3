/** The server's API as the page uses it: every call carries the key the user gave, errors come back as text. */

export interface Keys {
  api: string;
  admin: string;
}

const STORAGE = 'loraplex.keys';

/** Kept for the browser tab's session only: closing the tab forgets them. */
export function loadKeys(): Keys {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORAGE) ?? '{}');
    return { api: String(saved.api ?? ''), admin: String(saved.admin ?? '') };
  } catch {
    return { api: '', admin: '' };
  }
}

export function saveKeys(keys: Keys) {
  sessionStorage.setItem(STORAGE, JSON.stringify(keys));
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function headers(key: string, json: boolean): Record<string, string> {
  const h: Record<string, string> = {};
  if (key) h.authorization = `Bearer ${key}`;
  if (json) h['content-type'] = 'application/json';
  return h;
}

/** The message of an OpenAI-shaped error body, or the body itself. */
async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  let message = text || res.statusText;
  try {
    message = JSON.parse(text).error?.message ?? message;
  } catch {}
  return new ApiError(res.status, message);
}

export async function getJson<T>(path: string, key: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: headers(key, false), signal });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/** POSTs `body`; the answer as text (the admin routes answer plain text or JSON). */
export async function post(path: string, key: string, body: unknown, signal?: AbortSignal): Promise<string> {
  const res = await fetch(path, { method: 'POST', headers: headers(key, true), body: JSON.stringify(body), signal });
  if (!res.ok) throw await errorOf(res);
  return res.text();
}

/** POSTs a streaming request; the response body once the status says it streams. */
export async function postStream(
  path: string,
  key: string,
  body: unknown,
  signal: AbortSignal,
): Promise<ReadableStream<Uint8Array>> {
  const res = await fetch(path, { method: 'POST', headers: headers(key, true), body: JSON.stringify(body), signal });
  if (!res.ok || !res.body) throw await errorOf(res);
  return res.body;
}
