/**
 * A small typed ServiceNow REST client on fetch: the Table API and the Change Management API.
 *
 * - Auth: basic, or OAuth 2.0 at /oauth_token.do (client credentials, or password grant when a user is
 *   given); the token is cached and fetched again before it expires, and once more after a 401.
 * - Every call has a timeout (AbortSignal.timeout). 429 waits for Retry-After; 5xx and network errors
 *   are retried with exponential backoff. Errors are CodedError(INTEGRATION_FAILED) carrying
 *   ServiceNow's own error.message and error.detail.
 * - Answers are normalised here, once: ServiceNow documents `result` as an object or (in some Change
 *   Management API examples) a one-element array for a single record, and each field as a plain value,
 *   `{value, display_value}` (sysparm_display_value=all, and the Change API's default), `{link, value}` or
 *   `{display_value, link}` (reference fields). Every method returns records whose fields are plain
 *   strings (SnRecord), so no caller ever sees a shape.
 */
import { CodedError, ErrorCode } from '../../domain/errors';
import type { Logger } from '../../logging';

export type ServiceNowAuth =
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'oauth'; clientId: string; clientSecret: string; username?: string; password?: string };

export interface ServiceNowClientOptions {
  instanceUrl: string;
  auth: ServiceNowAuth;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Retries after the first attempt for 429, 5xx and network errors. */
  maxRetries?: number;
  /** First backoff step for 5xx; doubles each retry. */
  backoffMs?: number;
  /** Longest Retry-After honoured; a longer one fails the call (the activity retry takes over). */
  maxRetryAfterMs?: number;
  /** A token is refreshed this long before it expires. */
  tokenRefreshMarginMs?: number;
  logger?: Logger;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * A field as ServiceNow may send it: a plain value; {value, display_value} (sysparm_display_value=all, and
 * the Change API's default); {link, value} or {display_value, link} for a reference field.
 */
export type SnField =
  string | number | boolean | { value?: unknown; display_value?: unknown; link?: string } | null | undefined;
/** A record as every method of this client returns it: each field its plain value ('' when empty). */
export type SnRecord = Record<string, string>;

export interface TableQueryOptions {
  /** Encoded query, e.g. "correlation_id=abc^active=true". */
  query?: string;
  fields?: string[];
  /** true: each field is its display value (labels, names) instead of its stored value. */
  displayValue?: boolean;
  limit?: number;
  offset?: number;
}

export interface TablePage<T> {
  records: T[];
  /** X-Total-Count, when the instance sends it. */
  total?: number;
  /** Offset of the next page (from the Link rel="next" header), if any. */
  nextOffset?: number;
}

export interface SnResponse<T> {
  status: number;
  result: T;
  headers: Headers;
}

interface CachedToken {
  accessToken: string;
  refreshToken?: string;
  expiresAt: number;
}

export class ServiceNowClient {
  readonly instanceUrl: string;
  private readonly o: Required<Omit<ServiceNowClientOptions, 'logger' | 'instanceUrl' | 'auth'>> &
    Pick<ServiceNowClientOptions, 'logger' | 'auth'>;
  private token: CachedToken | undefined;
  private tokenInFlight: Promise<CachedToken> | undefined;

  constructor(options: ServiceNowClientOptions) {
    this.instanceUrl = options.instanceUrl.replace(/\/+$/, '');
    this.o = {
      auth: options.auth,
      logger: options.logger,
      timeoutMs: options.timeoutMs ?? 15_000,
      maxRetries: options.maxRetries ?? 3,
      backoffMs: options.backoffMs ?? 500,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? 60_000,
      fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
      sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
      now: options.now ?? Date.now,
    };
  }

  // ---------------------------------------------------------------- Table API

  async tableQuery<T extends SnRecord = SnRecord>(
    table: string,
    options: TableQueryOptions = {},
  ): Promise<TablePage<T>> {
    const res = await this.request<unknown>('GET', `/api/now/table/${encodeURIComponent(table)}`, {
      query: tableParams(options),
    });
    const totalHeader = res.headers.get('x-total-count');
    const next = nextOffsetFromLink(res.headers.get('link'));
    return {
      records: recordList(res.result, `GET /api/now/table/${table}`) as T[],
      ...(totalHeader !== null && totalHeader !== '' ? { total: Number(totalHeader) } : {}),
      ...(next !== undefined ? { nextOffset: next } : {}),
    };
  }

  /** Follows the Link rel="next" pages until there are none (or `max` records). */
  async tableQueryAll<T extends SnRecord = SnRecord>(
    table: string,
    options: Omit<TableQueryOptions, 'offset'> = {},
    max = 10_000,
  ): Promise<T[]> {
    const out: T[] = [];
    let offset: number | undefined = 0;
    while (offset !== undefined && out.length < max) {
      const page: TablePage<T> = await this.tableQuery<T>(table, { ...options, offset, limit: options.limit ?? 100 });
      out.push(...page.records);
      if (page.records.length === 0) break;
      offset = page.nextOffset;
    }
    return out.slice(0, max);
  }

  /** Returns null when the record does not exist. */
  async tableGet<T extends SnRecord = SnRecord>(
    table: string,
    sysId: string,
    options: Pick<TableQueryOptions, 'fields' | 'displayValue'> = {},
  ): Promise<T | null> {
    const path = `/api/now/table/${encodeURIComponent(table)}/${encodeURIComponent(sysId)}`;
    return this.optionalRecord<T>('GET', path, { query: tableParams(options) });
  }

  async tableCreate<T extends SnRecord = SnRecord>(table: string, body: Record<string, unknown>): Promise<T> {
    return this.oneRecord<T>('POST', `/api/now/table/${encodeURIComponent(table)}`, { body });
  }

  async tableUpdate<T extends SnRecord = SnRecord>(
    table: string,
    sysId: string,
    body: Record<string, unknown>,
  ): Promise<T> {
    return this.oneRecord<T>('PATCH', `/api/now/table/${encodeURIComponent(table)}/${encodeURIComponent(sysId)}`, {
      body,
    });
  }

  // ---------------------------------------------------------------- Change Management API

  async createChange(
    type: 'normal' | 'emergency' | 'standard',
    body: Record<string, unknown>,
    standardTemplateSysId?: string,
  ): Promise<SnRecord> {
    let path = `/api/sn_chg_rest/change/${type}`;
    if (type === 'standard') {
      if (!standardTemplateSysId)
        throw new CodedError(
          ErrorCode.InvalidInput,
          'A standard change needs a standard change template sys_id: set one on the deployment policy.',
        );
      path += `/${encodeURIComponent(standardTemplateSysId)}`;
    }
    return this.oneRecord('POST', path, { body });
  }

  /** Returns null when the change does not exist. */
  async getChange(sysId: string): Promise<SnRecord | null> {
    return this.optionalRecord('GET', `/api/sn_chg_rest/change/${encodeURIComponent(sysId)}`);
  }

  async updateChange(sysId: string, body: Record<string, unknown>): Promise<SnRecord> {
    return this.oneRecord('PATCH', `/api/sn_chg_rest/change/${encodeURIComponent(sysId)}`, { body });
  }

  async createChangeTask(changeSysId: string, body: Record<string, unknown>): Promise<SnRecord> {
    return this.oneRecord('POST', `/api/sn_chg_rest/change/${encodeURIComponent(changeSysId)}/task`, { body });
  }

  async listChangeTasks(changeSysId: string): Promise<SnRecord[]> {
    const path = `/api/sn_chg_rest/change/${encodeURIComponent(changeSysId)}/task`;
    return recordList((await this.request<unknown>('GET', path)).result, `GET ${path}`);
  }

  async updateChangeTask(changeSysId: string, taskSysId: string, body: Record<string, unknown>): Promise<SnRecord> {
    return this.oneRecord(
      'PATCH',
      `/api/sn_chg_rest/change/${encodeURIComponent(changeSysId)}/task/${encodeURIComponent(taskSysId)}`,
      { body },
    );
  }

  /** Reachability and credentials: one cheap authenticated read. */
  async ping(): Promise<void> {
    await this.request('GET', '/api/now/table/sys_user', {
      query: { sysparm_limit: '1', sysparm_fields: 'sys_id' },
      retries: 0,
    });
  }

  // ---------------------------------------------------------------- transport

  async request<T>(
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
    path: string,
    opts: { query?: Record<string, string>; body?: unknown; retries?: number } = {},
  ): Promise<SnResponse<T>> {
    const url = new URL(this.instanceUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const maxRetries = opts.retries ?? this.o.maxRetries;
    let reauthed = false;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        const headers: Record<string, string> = {
          accept: 'application/json',
          authorization: await this.authorization(),
        };
        if (opts.body !== undefined) headers['content-type'] = 'application/json';
        res = await this.o.fetch(url, {
          method,
          headers,
          body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
          signal: AbortSignal.timeout(this.o.timeoutMs),
        });
      } catch (e) {
        if (e instanceof CodedError) throw e;
        const timedOut = (e as Error).name === 'TimeoutError';
        const what = timedOut ? `no answer within ${this.o.timeoutMs} ms` : (e as Error).message;
        if (attempt < maxRetries) {
          this.o.logger?.warn({ method, path, attempt, err: e }, 'ServiceNow request failed; retrying');
          await this.o.sleep(this.backoff(attempt));
          continue;
        }
        throw new CodedError(
          ErrorCode.IntegrationFailed,
          `ServiceNow ${method} ${path} failed: ${what}. Check SERVICENOW_INSTANCE_URL and that the instance is reachable.`,
          {
            cause: e,
            retryable: true,
          },
        );
      }

      if (res.status === 401 && this.o.auth.kind === 'oauth' && !reauthed) {
        // The token was revoked or expired early: get a new one, once.
        await res.body?.cancel();
        if (this.token) this.token = { ...this.token, expiresAt: 0 };
        reauthed = true;
        attempt--;
        continue;
      }
      if (res.status === 429 && attempt < maxRetries) {
        const wait = retryAfterMs(res.headers.get('retry-after'), this.o.now()) ?? this.backoff(attempt);
        await res.body?.cancel();
        if (wait > this.o.maxRetryAfterMs)
          throw this.failure(method, path, 429, undefined, `rate limited for ${Math.round(wait / 1000)} s`, true);
        this.o.logger?.warn({ method, path, waitMs: wait }, 'ServiceNow rate limit; waiting for Retry-After');
        await this.o.sleep(wait);
        continue;
      }
      if (res.status >= 500 && attempt < maxRetries) {
        await res.body?.cancel();
        this.o.logger?.warn({ method, path, status: res.status, attempt }, 'ServiceNow server error; retrying');
        await this.o.sleep(this.backoff(attempt));
        continue;
      }

      const text = await res.text();
      let json: unknown;
      try {
        json = text === '' ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      if (!res.ok) {
        const err = (json as { error?: { message?: string; detail?: string } } | undefined)?.error;
        throw this.failure(method, path, res.status, err, text.slice(0, 200), res.status === 429 || res.status >= 500);
      }
      const result = (json as { result?: T } | undefined)?.result as T;
      return { status: res.status, result, headers: res.headers };
    }
  }

  private failure(
    method: string,
    path: string,
    status: number,
    err: { message?: string; detail?: string } | undefined,
    fallback: string,
    retryable: boolean,
  ): CodedError {
    const sn = [err?.message, err?.detail].filter((s) => s && s.length > 0).join(': ') || fallback || `HTTP ${status}`;
    const hint =
      status === 401
        ? ' Check the ServiceNow credentials (SERVICENOW_USERNAME/PASSWORD or CLIENT_ID/SECRET).'
        : status === 403
          ? ' The ServiceNow user lacks a role for this (it needs itil / sn_change_write and rest_service).'
          : '';
    const e = new CodedError(
      ErrorCode.IntegrationFailed,
      `ServiceNow ${method} ${path} returned ${status}: ${sn}.${hint}`,
      { retryable },
    );
    (e as CodedError & { status?: number; serviceNowError?: unknown }).status = status;
    (e as CodedError & { serviceNowError?: unknown }).serviceNowError = err;
    return e;
  }

  /** One record (object or one-element array), normalised; an answer without one is an INTEGRATION_FAILED. */
  private async oneRecord<T extends SnRecord = SnRecord>(
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    opts: { query?: Record<string, string>; body?: unknown } = {},
  ): Promise<T> {
    const rec = singleRecord((await this.request<unknown>(method, path, opts)).result, `${method} ${path}`);
    if (!rec)
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `ServiceNow ${method} ${path} answered without a record (an empty result). Check the instance's REST API logs.`,
      );
    return rec as T;
  }

  /** Like oneRecord, but null when ServiceNow answers 404 (or an empty result). */
  private async optionalRecord<T extends SnRecord = SnRecord>(
    method: 'GET',
    path: string,
    opts: { query?: Record<string, string> } = {},
  ): Promise<T | null> {
    try {
      return singleRecord((await this.request<unknown>(method, path, opts)).result, `${method} ${path}`) as T | null;
    } catch (e) {
      if (e instanceof CodedError && (e as CodedError & { status?: number }).status === 404) return null;
      throw e;
    }
  }

  private backoff(attempt: number): number {
    return this.o.backoffMs * 2 ** attempt;
  }

  private async authorization(): Promise<string> {
    const auth = this.o.auth;
    if (auth.kind === 'basic') return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    const token = await this.accessToken();
    return `Bearer ${token.accessToken}`;
  }

  private async accessToken(): Promise<CachedToken> {
    const now = this.o.now();
    if (this.token && this.token.expiresAt - this.o.tokenRefreshMarginMs > now) return this.token;
    this.tokenInFlight ??= this.fetchToken(this.token?.refreshToken).finally(() => {
      this.tokenInFlight = undefined;
    });
    this.token = await this.tokenInFlight;
    return this.token;
  }

  private async fetchToken(refreshToken: string | undefined): Promise<CachedToken> {
    const auth = this.o.auth;
    if (auth.kind !== 'oauth') throw new Error('unreachable');
    const form = new URLSearchParams({ client_id: auth.clientId, client_secret: auth.clientSecret });
    if (refreshToken) {
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', refreshToken);
    } else if (auth.username && auth.password) {
      form.set('grant_type', 'password');
      form.set('username', auth.username);
      form.set('password', auth.password);
    } else {
      form.set('grant_type', 'client_credentials');
    }
    let res: Response;
    try {
      res = await this.o.fetch(`${this.instanceUrl}/oauth_token.do`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
    } catch (e) {
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `ServiceNow OAuth token request failed: ${(e as Error).message}. Check SERVICENOW_INSTANCE_URL.`,
        { cause: e, retryable: true },
      );
    }
    const body = (await res.json().catch(() => ({}))) as {
      access_token?: string;
      refresh_token?: string;
      expires_in?: number | string;
      error?: string;
      error_description?: string;
    };
    if (!res.ok || !body.access_token) {
      if (refreshToken) {
        // The refresh token is no longer good: start over with the primary grant.
        this.o.logger?.info('ServiceNow refresh token refused; requesting a new token');
        return this.fetchToken(undefined);
      }
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `ServiceNow OAuth token request returned ${res.status}: ${body.error_description ?? body.error ?? 'no access_token'}. Check SERVICENOW_CLIENT_ID and SERVICENOW_CLIENT_SECRET (and the OAuth application registry entry).`,
        { retryable: res.status >= 500 },
      );
    }
    const expiresIn = Number(body.expires_in ?? 1800);
    return {
      accessToken: body.access_token,
      refreshToken: body.refresh_token ?? refreshToken,
      expiresAt: this.o.now() + expiresIn * 1000,
    };
  }
}

// ---------------------------------------------------------------- helpers

function tableParams(
  o: Pick<TableQueryOptions, 'query' | 'fields' | 'displayValue' | 'limit' | 'offset'>,
): Record<string, string> {
  const p: Record<string, string> = {};
  if (o.query) p.sysparm_query = o.query;
  if (o.fields?.length) p.sysparm_fields = o.fields.join(',');
  if (o.displayValue !== undefined) p.sysparm_display_value = String(o.displayValue);
  if (o.limit !== undefined) p.sysparm_limit = String(o.limit);
  if (o.offset !== undefined) p.sysparm_offset = String(o.offset);
  p.sysparm_exclude_reference_link = 'true';
  return p;
}

/** Parses RFC 8288 Link: <url>;rel="next" → the sysparm_offset of the next page. */
export function nextOffsetFromLink(link: string | null): number | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part.trim());
    if (!m) continue;
    try {
      const off = new URL(m[1]!, 'http://x').searchParams.get('sysparm_offset');
      return off === null ? undefined : Number(off);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Retry-After as seconds or an HTTP date → milliseconds to wait. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The plain value of a field in any documented shape: a plain value as is; {value, display_value} and
 * {link, value} → value; {display_value, link} (a reference with sysparm_display_value=true) → display_value.
 * undefined for null/undefined.
 */
export function snValue(field: unknown): string | undefined {
  if (field === null || field === undefined) return undefined;
  if (typeof field === 'object' && !Array.isArray(field)) {
    const f = field as { value?: unknown; display_value?: unknown };
    const v = 'value' in f ? f.value : f.display_value;
    return v === null || v === undefined ? undefined : String(v);
  }
  return String(field);
}

/** The display value of a field in any documented shape (the value when no display value was sent). */
export function snDisplay(field: unknown): string | undefined {
  if (field !== null && typeof field === 'object' && !Array.isArray(field) && 'display_value' in field) {
    const d = (field as { display_value: unknown }).display_value;
    return d === null || d === undefined ? undefined : String(d);
  }
  return snValue(field);
}

/** A record with every field as its plain value ('' for an empty one). Throws INTEGRATION_FAILED for a non-object. */
export function normaliseRecord(raw: unknown, what: string): SnRecord {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CodedError(
      ErrorCode.IntegrationFailed,
      `ServiceNow ${what} answered a record that is not a JSON object (${JSON.stringify(raw)?.slice(0, 80)}).`,
    );
  }
  const out: SnRecord = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) out[k] = snValue(v) ?? '';
  return out;
}

/** `result` of a single-record call: an object or a one-element array; null when empty. */
export function singleRecord(result: unknown, what: string): SnRecord | null {
  if (result === undefined || result === null) return null;
  if (Array.isArray(result)) {
    if (result.length === 0) return null;
    if (result.length > 1)
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `ServiceNow ${what} answered ${result.length} records where one was expected.`,
      );
    return normaliseRecord(result[0], what);
  }
  return normaliseRecord(result, what);
}

/** `result` of a list call: an array (or a lone object, taken as a list of one). */
export function recordList(result: unknown, what: string): SnRecord[] {
  if (result === undefined || result === null) return [];
  return (Array.isArray(result) ? result : [result]).map((r) => normaliseRecord(r, what));
}

/** ServiceNow glide_date_time values are "yyyy-MM-dd HH:mm:ss" in UTC. */
export function toSnDateTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new CodedError(ErrorCode.InvalidInput, `"${iso}" is not a date-time`);
  return d.toISOString().slice(0, 19).replace('T', ' ');
}

export function fromSnDateTime(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})/.exec(value);
  return m ? `${m[1]}T${m[2]}.000Z` : undefined;
}
