/**
 * The webhook deliverer, one per server process. Each tick it
 *   1. feeds the outbox from the audit log (db/webhooks.ts: idempotent, the cursor in the database),
 *   2. every few minutes records new SLA breaches as audit entries (db/sla-breaches.ts), when an endpoint wants them,
 *   3. claims due deliveries (FOR UPDATE SKIP LOCKED with a lease) and POSTs each, signed, recording the outcome:
 *      2xx = delivered; otherwise the next attempt after a backoff with jitter, or failed once attempts run out.
 * All state is in the database, so a crash loses nothing (a delivery claimed by a process that died is due again
 * when its lease ends) and any number of servers can run one.
 */
import type { Db } from '../db/client';
import type { SecretBox } from '../db/secret-box';
import { recordNewSlaBreaches } from '../db/sla-breaches';
import {
  claimDueDeliveries,
  feedWebhookOutbox,
  listWebhookEndpoints,
  recordDelivered,
  recordFailedAttempt,
  type ClaimedDelivery,
} from '../db/webhooks';
import { endpointWants } from '../domain/webhook-events';
import type { Logger } from '../logging';
import { retryDelaySeconds, RETRY_DELAYS_SECONDS } from './backoff';
import { postWebhook, type SendResult } from './send';
import { signatureHeader, SIGNATURE_HEADER } from './signature';
import type { Resolver } from './target';

export type DeliveryOutcome = 'delivered' | 'retrying' | 'failed';

export interface WebhookDelivererOptions {
  db: Db;
  box: SecretBox;
  logger: Logger;
  /** WEBHOOK_ALLOW_PRIVATE: allow loopback, private and link-local targets. */
  allowPrivate: boolean;
  /** Between ticks when there was nothing to do (default 2 s). */
  intervalMs?: number;
  /** Per POST (default 10 s). */
  timeoutMs?: number;
  /** Deliveries claimed and sent concurrently per tick (default 8). */
  batch?: number;
  /** Waits after each failed attempt (default RETRY_DELAYS_SECONDS: 8 attempts over about a day). */
  retryDelaysSeconds?: readonly number[];
  /** How often to look for new SLA breaches (default 10 minutes; 0 = never). */
  slaSweepMs?: number;
  /** Called once per attempt (metrics). */
  onOutcome?: (outcome: DeliveryOutcome) => void;
  resolve?: Resolver;
  now?: () => Date;
}

export interface WebhookDeliverer {
  /** One tick now: feed, maybe sweep, deliver what is due. Returns how many deliveries were attempted. */
  tick(): Promise<number>;
  stop(): Promise<void>;
}

/** Builds a deliverer without starting its loop (tests drive tick() themselves). */
export function createWebhookDeliverer(o: WebhookDelivererOptions): WebhookDeliverer {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const batch = o.batch ?? 8;
  const delays = o.retryDelaysSeconds ?? RETRY_DELAYS_SECONDS;
  const slaSweepMs = o.slaSweepMs ?? 10 * 60_000;
  const now = o.now ?? (() => new Date());
  // The lease outlives the POST's timeout by a margin, so a slow send is never claimed twice.
  const leaseSeconds = Math.ceil(timeoutMs / 1000) + 30;
  let lastSweep = 0;

  async function sweepSlaIfDue(): Promise<void> {
    if (slaSweepMs <= 0 || now().getTime() - lastSweep < slaSweepMs) return;
    lastSweep = now().getTime();
    const endpoints = await listWebhookEndpoints(o.db);
    if (!endpoints.some((e) => e.enabled && endpointWants(e.eventTypes, 'sla.breached'))) return;
    const n = await recordNewSlaBreaches(o.db, { now: now() });
    if (n > 0) o.logger.info({ breaches: n }, 'new SLA breaches recorded');
  }

  /** Signs and POSTs; a secret that cannot be opened (another SECRETS_KEY) is a failed attempt like any other. */
  async function send(d: ClaimedDelivery, body: string): Promise<SendResult> {
    let secret: string;
    try {
      secret = o.box.open(d.secretSealed);
    } catch (e) {
      return { status: null, error: `the endpoint's secret cannot be opened: ${(e as Error).message}` };
    }
    const headers = {
      'Patchops-Event': d.eventType,
      'Patchops-Delivery': d.id,
      [SIGNATURE_HEADER]: signatureHeader(secret, body, now()),
    };
    return postWebhook(d.url, body, headers, {
      allowPrivate: o.allowPrivate,
      timeoutMs,
      ...(o.resolve ? { resolve: o.resolve } : {}),
    });
  }

  async function deliver(d: ClaimedDelivery): Promise<DeliveryOutcome> {
    const body = JSON.stringify(d.payload);
    const r = await send(d, body);
    if (r.error === undefined) {
      await recordDelivered(o.db, d, r.status!);
      return 'delivered';
    }
    const retryIn = retryDelaySeconds(d.attempts, delays);
    await recordFailedAttempt(o.db, d, { httpStatus: r.status, error: r.error, retryInSeconds: retryIn });
    o.logger.warn(
      {
        delivery: d.id,
        endpoint: d.endpointId,
        attempt: d.attempts,
        status: r.status,
        error: r.error,
        retryInSeconds: retryIn,
      },
      retryIn === null ? 'webhook delivery failed for good' : 'webhook delivery failed; will retry',
    );
    return retryIn === null ? 'failed' : 'retrying';
  }

  async function tick(): Promise<number> {
    // A backlog (many events at once) is read in batches, a few per tick.
    for (let i = 0; i < 10 && (await feedWebhookOutbox(o.db)).more; i++);
    await sweepSlaIfDue().catch((err: unknown) =>
      o.logger.warn({ err }, 'the SLA breach sweep failed; the next one retries'),
    );
    const due = await claimDueDeliveries(o.db, { limit: batch, leaseSeconds });
    const outcomes = await Promise.all(
      due.map((d) =>
        deliver(d).catch((err: unknown) => {
          // A database error while recording: the lease ends and the delivery is tried again.
          o.logger.warn({ err, delivery: d.id }, 'webhook delivery outcome could not be recorded');
          return 'retrying' as const;
        }),
      ),
    );
    for (const outcome of outcomes) o.onOutcome?.(outcome);
    return due.length;
  }

  let running: Promise<unknown> = Promise.resolve();
  return {
    tick() {
      const t = tick();
      running = t;
      return t;
    },
    /** Waits for the tick in flight; the loop (startWebhookDeliverer) schedules no more. */
    async stop() {
      await running.catch(() => undefined);
    },
  };
}

/** Starts the deliverer's loop: a tick, then the next one at once while work was found, else after intervalMs. */
export function startWebhookDeliverer(o: WebhookDelivererOptions): WebhookDeliverer {
  const d = createWebhookDeliverer(o);
  const intervalMs = o.intervalMs ?? 2000;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const loop = async () => {
    let worked = 0;
    try {
      worked = await d.tick();
    } catch (err) {
      o.logger.warn({ err }, 'webhook deliverer tick failed; retrying');
    }
    if (!stopped) timer = setTimeout(() => void loop(), worked > 0 ? 0 : intervalMs);
  };
  timer = setTimeout(() => void loop(), 0);
  return {
    tick: d.tick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await d.stop();
    },
  };
}
