/** The agent's side of the gateway protocol (HTTP + JSON), with exponential backoff and full jitter. */
import {
  enrollResponseSchema,
  pollResponseSchema,
  signedManifestSchema,
  type EnrollRequest,
  type EnrollResponse,
  type Inventory,
  type JobResult,
  type PollResponse,
  type SignedManifest,
} from '../shared/agent-protocol';

/**
 * Tool output can carry NUL bytes (a binary name in a package list, a corrupt changelog); the server refuses any
 * body with one (400), which would drop the whole result. They never mean anything in a report: leave them out.
 */
export function withoutNul(_key: string, value: unknown): unknown {
  return typeof value === 'string' && value.includes('\u0000') ? value.replaceAll('\u0000', '') : value;
}

export class GatewayHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The server's `Retry-After` (503, 429), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'GatewayHttpError';
  }
}

/** A `Retry-After` header value (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, nowMs = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Math.min(Number(v), 3600) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - nowMs), 3600_000);
}

/**
 * How long to wait before retry number `attempt` after `error`: when the server said `Retry-After`, that delay plus
 * up to half of it again (jitter, so agents told the same delay do not return together), never sooner; otherwise
 * backoffMs.
 */
export function retryDelayMs(
  error: unknown,
  attempt: number,
  baseMs = 1000,
  capMs = 60_000,
  random: () => number = Math.random,
): number {
  if (error instanceof GatewayHttpError && error.retryAfterMs !== undefined)
    return jitterAfter(error.retryAfterMs, random);
  return backoffMs(attempt, baseMs, capMs, random);
}

/** `ms` plus up to half of it again, at random. */
export function jitterAfter(ms: number, random: () => number = Math.random): number {
  return Math.floor(ms + random() * ms * 0.5);
}

/** True for an answer worth retrying unchanged: the server was overloaded or away (5xx) or asked this agent to slow down (429). */
export function isRetryable(e: unknown): boolean {
  return !(e instanceof GatewayHttpError) || e.status >= 500 || e.status === 429;
}

/** Delay before retry number `attempt` (0-based): random in [0, min(cap, base·2^attempt)] ("full jitter"). */
export function backoffMs(attempt: number, baseMs = 1000, capMs = 60_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** True for a host that is this machine's loopback (127.0.0.0/8, ::1, localhost): its traffic never leaves the machine. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Checks the server URL before the agent sends anything to it: https, or plain http only when allowed explicitly
 * (`--insecure-http`) or on this machine's loopback. Over plain http on a network, anyone on the path reads the
 * enrol secret and the node key and can answer with jobs of their own: the agent runs them as root.
 */
export function checkServerUrl(raw: string, o: { insecureHttp?: boolean } = {}): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`the server URL "${raw}" is not a URL: give it as https://host[:port]`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol !== 'http:')
    throw new Error(`the server URL "${raw}" is not http(s): give it as https://host[:port]`);
  if (o.insecureHttp || isLoopbackHost(url.hostname)) return url;
  throw new Error(
    `the server URL ${raw} is plain http: the enrol secret, the node key and the jobs would cross the network unencrypted, ` +
      'and anyone on the path could hand this agent jobs to run as root. Use the https:// URL of the server, or pass --insecure-http ' +
      'to allow plain http (only on a network you trust).',
  );
}

/**
 * A request's time-out that gives an answer already received its chance first. AbortSignal.timeout aborts from the
 * timers phase of the event loop, before the poll phase reads sockets: after the process stalled (a busy or
 * suspended machine), a poll answer that arrived in time, with jobs leased to this agent, would be dropped unread
 * and its jobs would wait out their lease on the server. Here the abort waits for one pass of the loop's I/O
 * (setImmediate runs after the poll phase), and an answer read by then is kept.
 */
export function answerTimeout(ms: number): { signal: AbortSignal; restart(): void; clear(): void } {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const clear = () => {
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
  const start = () => {
    timer = setTimeout(() => {
      immediate = setImmediate(() =>
        controller.abort(new DOMException(`no answer within ${Math.round(ms / 1000)} s`, 'TimeoutError')),
      );
    }, ms).unref();
  };
  start();
  return {
    signal: controller.signal,
    /** The answer has begun (its headers are in): its body gets the time-out afresh. */
    restart: () => {
      clear();
      start();
    },
    clear,
  };
}

export class GatewayClient {
  nodeKey: string | undefined;
  /** A poll got no answer at all, and the server has not said since that it looked for what it had leased (poll). */
  lostAnswer = false;
  /** The `Retry-After` of the last successful answer (a poll answered at once because the server holds enough polls). */
  lastRetryAfterMs: number | undefined;
  constructor(
    readonly serverUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.nodeKey) headers.authorization = `Bearer ${this.nodeKey}`;
    let res: Response;
    const timeout = answerTimeout(timeoutMs);
    try {
      res = await this.fetchImpl(`${this.serverUrl.replace(/\/+$/, '')}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body, withoutNul),
        signal: timeout.signal,
        // The protocol has no redirects: following one could take an https server's answer to a plain-http address.
        redirect: 'error',
      });
    } catch (e) {
      timeout.clear();
      // fetch says only "fetch failed"; the reason (refused, reset, a redirect, a certificate) is its cause.
      const cause = (e as Error).cause instanceof Error ? `: ${((e as Error).cause as Error).message}` : '';
      throw new Error(`${method} ${path}: ${(e as Error).message}${cause}`, { cause: e });
    }
    timeout.restart();
    let text: string;
    try {
      text = await res.text();
    } finally {
      timeout.clear();
    }
    if (!res.ok) {
      let code = 'HTTP_ERROR';
      let message = text.slice(0, 500);
      try {
        const j = JSON.parse(text) as { error?: string; message?: string };
        code = j.error ?? code;
        message = j.message ?? message;
      } catch {
        // not JSON: keep the text
      }
      throw new GatewayHttpError(
        res.status,
        code,
        `${method} ${path}: ${res.status} ${message}`,
        parseRetryAfter(res.headers.get('retry-after')),
      );
    }
    this.lastRetryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
    return (text ? JSON.parse(text) : {}) as T;
  }

  async enroll(req: EnrollRequest): Promise<EnrollResponse> {
    return enrollResponseSchema.parse(await this.call('POST', '/agent/v1/enroll', req));
  }

  /**
   * `retryAfterMs`: the server could not hold this poll and says when to poll again.
   *
   * After a poll that got no answer at all (a time-out, a reset; not an HTTP answer such as 503), polls say `lost=1`
   * until an answer says the server looked (`lostChecked`): the server then offers again at once what it had leased
   * to this agent before, an answer that never arrived, instead of when the lease ends. That is right only because
   * callers are serial: they run and report an answer's jobs before they poll again, so at a poll they hold none.
   */
  async poll(waitSeconds: number): Promise<PollResponse & { retryAfterMs?: number }> {
    let res: PollResponse;
    try {
      res = pollResponseSchema.parse(
        await this.call(
          'GET',
          `/agent/v1/jobs?wait=${waitSeconds}${this.lostAnswer ? '&lost=1' : ''}`,
          undefined,
          (waitSeconds + 15) * 1000,
        ),
      );
    } catch (e) {
      if (!(e instanceof GatewayHttpError)) this.lostAnswer = true;
      throw e;
    }
    if (res.lostChecked) this.lostAnswer = false;
    return this.lastRetryAfterMs === undefined ? res : { ...res, retryAfterMs: this.lastRetryAfterMs };
  }

  async result(jobId: string, result: JobResult): Promise<{ outcome: string }> {
    return this.call('POST', `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, result);
  }

  /** Extends the lease of a job this agent is running (long installs). 409 when the job is no longer its. */
  async renewLease(jobId: string): Promise<{ leaseExpiresAt: string }> {
    return this.call('POST', `/agent/v1/jobs/${encodeURIComponent(jobId)}/lease`, {});
  }

  async inventory(inv: Inventory): Promise<void> {
    await this.call('PUT', '/agent/v1/inventory', inv, 120_000);
  }

  async manifest(): Promise<SignedManifest> {
    return signedManifestSchema.parse(await this.call('GET', '/agent/v1/manifest'));
  }
}
