/**
 * A Bolt Receiver that mounts `POST /slack/events` on our Fastify server (the shape of Bolt's HTTPReceiver
 * and AwsLambdaReceiver): verifies the signature over the raw body (Bolt's verifySlackRequest: v0
 * HMAC-SHA256, timestamps older than five minutes refused), drops retries of what it has already taken
 * (X-Slack-Retry-Num with a seen event id) and double-delivered interactions, hands the event to Bolt and
 * answers as soon as the listener acks (Slack allows 3 s). Before the ack this path does one thing besides
 * checking: it claims the delivery id in the shared receipts (one indexed statement in PostgreSQL, so a retry that
 * reaches another server is known there too); the listener's work (database, Temporal) comes after the ack.
 */
import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import { verifySlackRequest } from '@slack/bolt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../../logging';
import type { DeliveryReceipts } from '../../shared/contracts';
import { MemoryReceipts } from '../../shared/memory-receipts';

export interface FastifySlackReceiverOptions {
  signingSecret: string;
  logger: Logger;
  path?: string;
  /** Answer 200 anyway when no listener acked within this time (Slack gives up at 3 s). */
  ackTimeoutMs?: number;
  /** How long a delivery id is remembered for deduplication. */
  dedupeTtlMs?: number;
  /** Where delivery ids are remembered: shared by every server in production; this process's memory by default. */
  receipts?: DeliveryReceipts;
  now?: () => number;
}

export interface ReceiverStats {
  received: number;
  refused: number;
  duplicates: number;
}

type Body = Record<string, unknown>;

export class FastifySlackReceiver implements Receiver {
  private app: App | undefined;
  private readonly receipts: DeliveryReceipts;
  readonly stats: ReceiverStats = { received: 0, refused: 0, duplicates: 0 };
  private readonly now: () => number;

  constructor(private readonly o: FastifySlackReceiverOptions) {
    this.now = o.now ?? Date.now;
    this.receipts = o.receipts ?? new MemoryReceipts(this.now);
  }

  init(app: App): void {
    this.app = app;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** The route module: an encapsulated plugin that keeps the raw body (needed for the signature). */
  routes() {
    return async (fastify: FastifyInstance) => {
      await fastify.register(async (scope) => {
        scope.removeAllContentTypeParsers();
        scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
        scope.post(this.o.path ?? '/slack/events', (req, reply) => this.handle(req, reply));
      });
    };
  }

  async handle(req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const raw = typeof req.body === 'string' ? req.body : '';
    const contentType = String(req.headers['content-type'] ?? '');
    if (
      contentType.includes('application/x-www-form-urlencoded') &&
      new URLSearchParams(raw).get('ssl_check') === '1'
    ) {
      return reply.code(200).send();
    }
    try {
      verifySlackRequest({
        signingSecret: this.o.signingSecret,
        body: raw,
        headers: {
          'x-slack-signature': String(req.headers['x-slack-signature'] ?? ''),
          'x-slack-request-timestamp': Number(req.headers['x-slack-request-timestamp']),
        },
        nowMilliseconds: this.now(),
      });
    } catch (e) {
      this.stats.refused += 1;
      this.o.logger.warn(
        { reason: (e as Error).message, ip: req.ip },
        'refused a Slack request that failed signature verification',
      );
      return reply.code(401).send({ error: 'invalid Slack signature or stale timestamp' });
    }

    let body: Body;
    try {
      body = parseBody(raw, contentType);
    } catch {
      return reply.code(400).send({ error: 'unreadable Slack request body' });
    }
    if (body.type === 'url_verification') return reply.code(200).send({ challenge: body.challenge });
    const problem = envelopeProblem(body);
    if (problem) return reply.code(400).send({ error: `not a Slack request Bolt can route: ${problem}` });

    this.stats.received += 1;
    const retryNum = headerNumber(req.headers['x-slack-retry-num']);
    const key = deliveryKey(body);
    if (key && !(await this.claim(key))) {
      this.stats.duplicates += 1;
      this.o.logger.info({ key, retryNum }, 'Slack delivery already taken: acknowledged without processing again');
      return reply.code(200).send();
    }

    const app = this.app;
    if (!app) return reply.code(503).send({ error: 'Slack app not initialised' });

    let acked = false;
    let resolveAck!: (value: unknown) => void;
    const ackPromise = new Promise<unknown>((resolve) => (resolveAck = resolve));
    const event: ReceiverEvent = {
      body,
      retryNum,
      retryReason:
        typeof req.headers['x-slack-retry-reason'] === 'string' ? req.headers['x-slack-retry-reason'] : undefined,
      ack: async (response?: unknown) => {
        if (acked) return;
        acked = true;
        resolveAck(response);
      },
    };
    const processing = app.processEvent(event).then(
      () => ({ kind: 'done' as const }),
      (error: unknown) => ({ kind: 'error' as const, error }),
    );
    const timeout = new Promise<{ kind: 'timeout' }>((resolve) => {
      const t = setTimeout(() => resolve({ kind: 'timeout' }), this.o.ackTimeoutMs ?? 2500);
      t.unref();
    });
    const first = await Promise.race([
      ackPromise.then((response) => ({ kind: 'ack' as const, response })),
      processing,
      timeout,
    ]);
    void processing.then((r) => {
      if (r.kind === 'error' && first.kind === 'ack')
        this.o.logger.error({ err: r.error }, 'Slack listener failed after ack');
    });
    if (first.kind === 'ack') return sendAck(reply, first.response);
    if (first.kind === 'done') {
      if (acked) return sendAck(reply, await ackPromise);
      // No listener for this event: Slack still wants a 200 so it does not retry.
      return reply.code(200).send();
    }
    if (first.kind === 'error') {
      this.o.logger.error({ err: first.error }, 'Slack event failed before ack');
      if (key)
        await this.receipts
          .release(key)
          .catch((err: unknown) => this.o.logger.warn({ err, key }, 'could not release a Slack delivery receipt'));
      return reply.code(500).send();
    }
    this.o.logger.warn({ type: body.type }, 'no ack within the time Slack allows: answered 200 without a body');
    return reply.code(200).send();
  }

  /**
   * Records `key`; false when it was already taken within the TTL (a duplicate). When the receipts cannot be
   * reached the delivery is taken anyway: a rare double delivery is safer than dropping a click (a second vote
   * by the same person is refused by the workflow).
   */
  private async claim(key: string): Promise<boolean> {
    try {
      return await this.receipts.claim(key, this.o.dedupeTtlMs ?? 10 * 60_000);
    } catch (err) {
      this.o.logger.warn(
        { err, key },
        'delivery receipts unavailable: taking the Slack delivery without the duplicate check',
      );
      return true;
    }
  }
}

function sendAck(reply: FastifyReply, response: unknown) {
  if (response === undefined || response === null || response === '') return reply.code(200).send();
  if (typeof response === 'string') return reply.code(200).type('text/plain; charset=utf-8').send(response);
  return reply.code(200).type('application/json; charset=utf-8').send(JSON.stringify(response));
}

function headerNumber(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  if (s === undefined) return undefined;
  const n = Number.parseInt(s, 10);
  return Number.isNaN(n) ? undefined : n;
}

/**
 * What Bolt reads before any listener runs and crashes without (App.buildSource): every Slack request but
 * url_verification names its workspace (team_id, team.id, user.team_id, an authorization, or an org-wide
 * install's enterprise), and a view event carries its view. Null when the envelope is usable.
 */
export function envelopeProblem(body: Body): string | null {
  const str = (v: unknown) => typeof v === 'string' && v.length > 0;
  const obj = (v: unknown): v is Record<string, unknown> => Boolean(v) && typeof v === 'object' && !Array.isArray(v);
  const auth = Array.isArray(body.authorizations) ? (body.authorizations[0] as unknown) : undefined;
  const team =
    str(body.team_id) ||
    (obj(body.team) && str(body.team.id)) ||
    (body.team === null && obj(body.enterprise)) ||
    (obj(body.user) && str(body.user.team_id)) ||
    (obj(auth) && str(auth.team_id));
  if (!team) return 'no workspace (team_id, team.id or user.team_id)';
  if (typeof body.type === 'string' && body.type.startsWith('view_') && !obj(body.view))
    return `a ${body.type} without a view`;
  if (body.type === 'event_callback' && !obj(body.event)) return 'an event_callback without an event';
  return null;
}

/** The request as Slack sends it: JSON (Events API), a form, or a form whose `payload` is JSON. Throws unless an object. */
export function parseBody(raw: string, contentType: string): Body {
  const form = contentType.includes('application/json') ? null : new URLSearchParams(raw);
  const json = form ? form.get('payload') : raw;
  const body: unknown = json === null ? Object.fromEntries(form!) : JSON.parse(json);
  if (!body || typeof body !== 'object' || Array.isArray(body))
    throw new Error('a Slack request body is a JSON object or a form');
  return body as Body;
}

/**
 * What identifies one delivery, the same across Slack's retries: the event id for Events API callbacks,
 * the action timestamp for a click, the view hash for a submission, the trigger id for a slash command.
 */
export function deliveryKey(body: Body): string | undefined {
  if (typeof body.event_id === 'string') return `event:${body.event_id}`;
  const user =
    (body.user as { id?: string } | undefined)?.id ?? (typeof body.user_id === 'string' ? body.user_id : undefined);
  if (body.type === 'block_actions') {
    const action = (body.actions as Array<{ action_id?: string; action_ts?: string }> | undefined)?.[0];
    if (action?.action_ts) return `action:${user}:${action.action_id}:${action.action_ts}`;
  }
  if (body.type === 'view_submission') {
    const view = body.view as { id?: string; hash?: string } | undefined;
    if (view?.id) return `view:${view.id}:${view.hash}`;
  }
  if (typeof body.command === 'string' && typeof body.trigger_id === 'string') return `command:${body.trigger_id}`;
  return undefined;
}
