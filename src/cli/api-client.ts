/**
 * The CLI's way to the server: the credentials `patchops login` stored ({server, token} in
 * $XDG_CONFIG_HOME/patchops/credentials.json, default ~/.config, mode 0600) and one JSON call to /api/v1 with them.
 * Errors say what to do: not logged in, server down, token refused, or the server's own refusal with its code.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

export interface Credentials {
  server: string;
  token: string;
}

export class ApiCallError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME)
      ? env.XDG_CONFIG_HOME
      : path.join(os.homedir(), '.config');
  return path.join(base, 'patchops', 'credentials.json');
}

export async function readCredentials(): Promise<Credentials | null> {
  try {
    const c = JSON.parse(await fs.readFile(credentialsPath(), 'utf8')) as Partial<Credentials>;
    return typeof c.server === 'string' && typeof c.token === 'string' ? { server: c.server, token: c.token } : null;
  } catch {
    return null;
  }
}

/** Writes the credentials readable by their owner only (the file is created 0600, and set so if it existed). */
export async function writeCredentials(c: Credentials): Promise<string> {
  const file = credentialsPath();
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  await fs.chmod(file, 0o600);
  return file;
}

export async function deleteCredentials(): Promise<boolean> {
  try {
    await fs.unlink(credentialsPath());
    return true;
  } catch {
    return false;
  }
}

/** `https://host:3000/` → `https://host:3000`; refuses what is not an http(s) URL. */
export function normalizeServer(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ApiCallError(
      `"${url}" is not a URL: give the server as http://host:port (what \`patchops up\` prints as Dashboard)`,
      'INVALID_INPUT',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ApiCallError(`"${url}" is not an http(s) URL`, 'INVALID_INPUT');
  return u.origin + u.pathname.replace(/\/+$/, '');
}

/** What one request sends besides its method and route. */
interface Outgoing {
  accept: string;
  /** JSON text, or a file's bytes as they are read (sent chunked: `duplex: 'half'`). */
  body?: string | ReadableStream<Uint8Array>;
  contentType?: string;
  /** Unset: no limit (an upload of a large file takes as long as it takes). */
  timeoutMs?: number;
}

/** Sends one request to `server` + /api/v1 + `route`; the response when it is 2xx, else an ApiCallError with the server's words. */
async function exchange(
  server: string,
  token: string | null,
  method: string,
  route: string,
  o: Outgoing,
): Promise<Response> {
  let res: Response;
  try {
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers: {
        accept: o.accept,
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(o.contentType ? { 'content-type': o.contentType } : {}),
      },
      ...(o.body !== undefined ? { body: o.body, duplex: 'half' } : {}),
      ...(o.timeoutMs ? { signal: AbortSignal.timeout(o.timeoutMs) } : {}),
    };
    res = await fetch(`${server}/api/v1${route}`, init);
  } catch (e) {
    const cause = ((e as { cause?: Error }).cause ?? e) as Error;
    throw new ApiCallError(
      `nothing answers at ${server} (${cause.message || cause.name}). Is \`patchops up\` (npm start) running there? Start it, or log in to the right server: patchops login --server URL`,
      'DEPENDENCY_DOWN',
    );
  }
  if (res.ok) return res;
  const text = await res.text();
  let e: { error?: string; message?: string } = {};
  try {
    e = (text ? JSON.parse(text) : {}) as typeof e;
  } catch {
    throw new ApiCallError(
      `${server} answered ${res.status} without JSON: is it a patchops server?`,
      'INTEGRATION_FAILED',
      res.status,
    );
  }
  const code = e.error ?? `HTTP_${res.status}`;
  const hint = res.status === 401 ? '\nLog in again: patchops login --server ' + server : '';
  throw new ApiCallError(`${e.message ?? `the server answered ${res.status}`}${hint}`, code, res.status);
}

/** A JSON call (a body, when given, is sent as JSON) with a 60 s limit. */
function send(
  server: string,
  token: string | null,
  method: string,
  route: string,
  body?: unknown,
  accept = 'application/json',
): Promise<Response> {
  return exchange(server, token, method, route, {
    accept,
    timeoutMs: 60_000,
    ...(body !== undefined ? { body: JSON.stringify(body), contentType: 'application/json' } : {}),
  });
}

async function jsonOf<T>(server: string, res: Response): Promise<T> {
  const text = await res.text();
  try {
    return (text ? JSON.parse(text) : undefined) as T;
  } catch {
    throw new ApiCallError(
      `${server} answered ${res.status} without JSON: is it a patchops server?`,
      'INTEGRATION_FAILED',
      res.status,
    );
  }
}

/** One call to `server` + /api/v1 + `route`; the parsed JSON body, or an ApiCallError. */
export async function callApi<T>(
  server: string,
  token: string | null,
  method: string,
  route: string,
  body?: unknown,
): Promise<T> {
  return jsonOf<T>(server, await send(server, token, method, route, body));
}

/**
 * POSTs the file at `file` to `route` as the raw request body (application/octet-stream), read from disk as it is
 * sent (never whole in memory), with the stored credentials; the parsed JSON reply, or an ApiCallError.
 */
export async function uploadFile<T>(route: string, file: string): Promise<T> {
  const c = await storedCredentials();
  const body = Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>;
  return jsonOf<T>(
    c.server,
    await exchange(c.server, c.token, 'POST', route, {
      accept: 'application/json',
      body,
      contentType: 'application/octet-stream',
    }),
  );
}

/** A call with the stored credentials; refuses with how to log in when there are none. */
export async function callWithLogin<T>(method: string, route: string, body?: unknown): Promise<T> {
  const c = await storedCredentials();
  return callApi<T>(c.server, c.token, method, route, body);
}

/** The stored credentials, or an ApiCallError saying how to log in (for verbs that check before doing local work). */
export async function storedCredentials(): Promise<Credentials> {
  const c = await readCredentials();
  if (!c)
    throw new ApiCallError(
      `not logged in (no ${credentialsPath()}): run patchops login --server http://<host>:<port>`,
      'UNAUTHORIZED',
    );
  return c;
}

/** Prints an error the way every API verb does (the code, no stack) and exits 1. */
export function exitWith(e: unknown): never {
  console.error(e instanceof ApiCallError ? `error [${e.code}]: ${e.message}` : `error: ${(e as Error).message}`);
  process.exit(1);
}

/** For the CLI's verbs: a call with the stored credentials, or the error printed (no stack) and exit 1. */
export async function callOrExit<T>(method: string, route: string, body?: unknown): Promise<T> {
  try {
    return await callWithLogin<T>(method, route, body);
  } catch (e) {
    exitWith(e);
  }
}

/**
 * For the CLI's file verbs (report, audit export): a GET with the stored credentials whose body is written to `out`
 * as it arrives (standard output when absent); the bytes written. On a refusal the error is printed and exit 1.
 */
export async function downloadOrExit(route: string, out: NodeJS.WritableStream | string): Promise<number> {
  try {
    const c = await storedCredentials();
    const res = await send(c.server, c.token, 'GET', route, undefined, '*/*');
    let bytes = 0;
    const count = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    const sink = typeof out === 'string' ? createWriteStream(out, { mode: 0o600 }) : out;
    await pipeline(Readable.fromWeb(res.body! as WebReadableStream), count, sink, { end: typeof out === 'string' });
    return bytes;
  } catch (e) {
    exitWith(e);
  }
}
