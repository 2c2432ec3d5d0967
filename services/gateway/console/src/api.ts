// REST calls to /api/v1 with the bearer token; API errors become ApiError with the server's
// message ({"error": {"code", "message"}}).

const TOKEN_KEY = 'taskwire.token';

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(t: string): void {
  sessionStorage.setItem(TOKEN_KEY, t);
}
export function clearToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

let unauthorized: (msg: string) => void = () => {};
/** Called with the server's message whenever a request answers 401. */
export function onUnauthorized(f: (msg: string) => void): void {
  unauthorized = f;
}
/** The session's token stopped working (a request, or the socket closed with 4001). */
export function notifyUnauthorized(msg: string): void {
  unauthorized(msg);
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export function qs(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

async function raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {},
  token = getToken()): Promise<Response> {
  const h: Record<string, string> = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the gateway: ${e instanceof Error ? e.message : e}`);
  }
  if (!res.ok) {
    let code = 'http_' + res.status;
    let message = `${method} /api/v1${path} answered ${res.status} ${res.statusText}`;
    try {
      const j = await res.json();
      if (j && j.error && typeof j.error.message === 'string') {
        message = j.error.message;
        code = String(j.error.code ?? code);
      }
    } catch {
      // not JSON: keep the status line
    }
    const err = new ApiError(res.status, code, message);
    if (res.status === 401) unauthorized(message);
    throw err;
  }
  return res;
}

/** A JSON request; throws ApiError on any non-2xx answer. */
export async function api<T>(method: string, path: string, body?: unknown,
  opts: { headers?: Record<string, string>; token?: string } = {}): Promise<T> {
  const res = await raw(method, path, body, opts.headers, opts.token ?? getToken());
  return (await res.json()) as T;
}

export const get = <T>(path: string, q?: Query) => api<T>('GET', path + qs(q));
export const post = <T>(path: string, body?: unknown, headers?: Record<string, string>) =>
  api<T>('POST', path, body ?? {}, { headers });
export const patch = <T>(path: string, body: unknown) => api<T>('PATCH', path, body);
export const del = <T>(path: string) => api<T>('DELETE', path);

/** The raw bytes of an endpoint (job output). */
export async function blob(path: string): Promise<Blob> {
  const res = await raw('GET', path);
  return res.blob();
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
