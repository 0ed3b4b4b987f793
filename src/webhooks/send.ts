/**
 * One HTTP POST of a delivery: to the checked addresses only (target.ts), no redirects followed, an overall
 * timeout, and at most a little of the answer read (for the delivery's last_error).
 */
import http from 'node:http';
import https from 'node:https';
import { pinnedLookup, resolveWebhookTarget, type Resolver } from './target';

export interface SendOptions {
  allowPrivate: boolean;
  timeoutMs: number;
  resolve?: Resolver;
}

export interface SendResult {
  /** The HTTP status, or null when no answer came (refused, timed out, not allowed). */
  status: number | null;
  /** Why it did not count as delivered; undefined for a 2xx. */
  error?: string;
}

const ANSWER_BYTES = 512;

export async function postWebhook(
  rawUrl: string,
  body: string,
  headers: Record<string, string>,
  o: SendOptions,
): Promise<SendResult> {
  const url = new URL(rawUrl);
  let addresses;
  try {
    addresses = await resolveWebhookTarget(url, {
      allowPrivate: o.allowPrivate,
      ...(o.resolve ? { resolve: o.resolve } : {}),
    });
  } catch (e) {
    return { status: null, error: (e as Error).message };
  }
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<SendResult>((resolve) => {
    const req = transport.request(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'user-agent': 'patchops-webhooks/1',
          ...headers,
        },
        lookup: pinnedLookup(addresses),
        signal: AbortSignal.timeout(o.timeoutMs),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let answer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (answer.length < ANSWER_BYTES) answer += chunk;
          else res.destroy();
        });
        const done = () => {
          if (status >= 200 && status < 300) resolve({ status });
          else resolve({ status, error: `HTTP ${status}${answer ? `: ${answer.slice(0, ANSWER_BYTES).trim()}` : ''}` });
        };
        res.on('end', done);
        res.on('close', done);
        res.on('error', done);
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.name === 'AbortError' || e.name === 'TimeoutError'
          ? `no answer within ${o.timeoutMs} ms`
          : `${e.code ?? e.name}: ${e.message}`;
      resolve({ status: null, error: why });
    });
    req.end(body);
  });
}
