/**
 * The agent gateway, mounted at /agent/v1: enrolment, long-poll job leasing, lease renewal, results, inventory,
 * the signed repository manifest, the repository's files and whoami. Agents authenticate with
 * `Authorization: Bearer <node key>`; distribution points with `Authorization: Bearer <distribution point token>`
 * (files and whoami only).
 *
 * Download tokens: a poll that names distribution points also carries a download token (src/shared/download-token.ts)
 * signed with the manifest-signing key, for the agent to show those points instead of its node key. A token lives
 * DOWNLOAD_TOKEN_TTL_SECONDS and is reused for an endpoint until less than half of that is left, so a poll signs at
 * most once per endpoint every few minutes. Points verify tokens offline with the key whoami gives them (`tokenKey`).
 *
 * Sites: the key cache holds each endpoint's site. Enrolment revokes the old key, so the new key is read fresh;
 * a site set with `patchops agents site` (another process) is logged in endpoint_site_changes, and every refresh
 * drops those endpoints from the cache, so the next request reads the new site (at most one refresh late).
 *
 * Idle polls are cheap: node keys are resolved from an in-memory cache (revocations are picked up from the
 * database every refresh), last-seen is written in batches, and an in-process "has work" set, refreshed from
 * the database every few hundred ms (and woken by wake()), decides whether a poll needs a lease query.
 * Correctness does not depend on the hint: the lease itself is the database's FOR UPDATE SKIP LOCKED claim, and
 * the refresh re-reads the truth. The caches, the download-token issuer, the work hint, the waiting polls and the
 * poll slots are small classes in ./gateway/; this module wires them to the routes. Re-signing the repository
 * manifest before it expires is a periodic job of the runtime (src/runtime/periodic-jobs.ts), not the gateway's.
 *
 * Backpressure: an overloaded database (pool exhausted or timed out, too many connections, a deadlock or
 * serialization failure) is answered 503 with `Retry-After`, never 500; with `dbQueueLimit`, a request that would
 * queue behind that many others for a database connection is shed at once the same way. One agent's excess polls are
 * answered 429 with `Retry-After`. The long polls held open per process are capped (AGENT_MAX_HELD_POLLS, by default
 * derived from the open-file limit, see defaultMaxHeldPolls): once full, a poll is answered at once (with any job it
 * has) and a `Retry-After` telling the agent when to poll again, instead of holding one more socket.
 */
import { createPrivateKey } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ensureEnvEnrollSecret } from '../db/agent-enroll-secrets';
import { enrollAgent, pendingEnrollmentForKey } from '../db/agent-enrolment';
import {
  endpointsWithWork,
  leaseJobsForMany,
  recordJobResult,
  recordPatchJobResults,
  type PatchJobReport,
  renewJobLease,
  returnLeasedJobs,
} from '../db/agent-jobs';
import { endpointForKey, keysRevokedSince } from '../db/agent-keys';
import { distributionPointForToken, distributionPointsBySite } from '../db/distribution-points';
import { lastSiteChangeId, siteChangesSince } from '../db/endpoint-sites';
import { touchEndpoints } from '../db/endpoints';
import { sha256Hex } from '../db/hashed-secrets';
import { activeSigningKey, latestManifest } from '../db/repository';
import { putInventory } from '../db/software-inventory';
import type { Database } from '../db/client';
import type { SecretBox } from '../db/secret-box';
import { CodedError, ErrorCode } from '../domain/errors';
import type { Logger } from '../logging';
import {
  AGENT_PROTOCOL_VERSION,
  enrollRequestSchema,
  inventorySchema,
  jobResultSchema,
  type AgentJob,
  type EnrollResponse,
  type LeaseRenewalResponse,
  type PollResponse,
  type WhoamiResponse,
} from '../shared/agent-protocol';
import type { RouteModule } from '../shared/contracts';
import { repeatEvery } from '../shared/repeat';
import { HttpError, HttpErrorCode, sendError } from './errors';
import { DownloadTokenIssuer } from './gateway/download-tokens';
import { NodeKeyCache, type KeyEntry } from './gateway/node-key-cache';
import { PollSlots } from './gateway/poll-slots';
import { ReloadedValue } from './gateway/reloaded-value';
import { QueueDrain } from './gateway/queue-drain';
import { RetryingLazy } from './gateway/retrying-lazy';
import { SeenBatch } from './gateway/seen-batch';
import { StatementBatcher } from './gateway/statement-batcher';
import { TtlCache } from './gateway/ttl-cache';
import { WorkHint } from './gateway/work-hint';
import { WorkWaiters } from './gateway/work-waiters';

export { DOWNLOAD_TOKEN_TTL_SECONDS } from './gateway/download-tokens';

export interface AgentGatewayOptions {
  database: Database;
  logger: Logger;
  /** How long a handed-out job stays the agent's before it is offered again; also what a renewal extends it by. */
  leaseSeconds?: number;
  /** How far past a job's deadline a renewed lease may reach (default LEASE_DEADLINE_GRACE_SECONDS, an hour). */
  leaseDeadlineGraceSeconds?: number;
  /** How often the distribution points per site are read again (default 30 s). */
  distributionPointsRefreshMs?: number;
  /** How often the "has work" set, revocations and last-seen are synced with the database. */
  refreshMs?: number;
  /** Longest long-poll an agent may ask for. */
  maxWaitSeconds?: number;
  /** What agents are told to wait between polls. */
  pollIntervalSeconds?: number;
  /** Where the central repository's files live, named by their sha256. */
  repositoryDir?: string;
  /** Opens the sealed manifest-signing key (secret-box.ts); the key is created on the first enrolment. */
  secretBox: SecretBox;
  /** AGENT_ENROLL_SECRET: kept active as an enrol secret beside those added with `patchops enroll-secret add`. */
  envEnrollSecret?: string;
  /** Long polls one agent may hold open at once (default 2); one more is answered 429 at once. */
  maxConcurrentPollsPerAgent?: number;
  /** Queue a scan for a newly enrolled endpoint so it reports what is missing at once (default true). */
  scanOnFirstEnrolment?: boolean;
  /** Long polls held open in this process at most (AGENT_MAX_HELD_POLLS; default defaultMaxHeldPolls(open-file limit)). */
  maxHeldPolls?: number;
  /**
   * Requests already waiting for a database connection beyond which a request is shed with 503 at once instead of
   * queueing (default: none; the pool's connection timeout bounds the wait and is answered 503 too). Shedding early
   * costs throughput: agents sent away leave the pool idle while they wait out Retry-After.
   */
  dbQueueLimit?: number;
  /**
   * A held poll with work leases it only while a database connection is free and fewer than this many requests
   * wait for one (default 1: only when nobody waits); otherwise it stays held and looks again shortly, leaving the
   * connections to the results that finish work already handed out. Polls neither queue behind a burst of results
   * nor add to it, and a lease never waits for a connection past the agent's own time-out.
   */
  leaseQueueLimit?: number;
  /**
   * At most this many lease statements at once (default: half the pool, at least 1; one on the embedded database).
   * Thousands of held polls wake in the same instant when a wave's jobs are written: the polls that ask while these
   * run wait for the next statement, which leases for up to LEASE_BATCH of them at once (StatementBatcher), and the other half
   * of the pool is left to results.
   */
  leaseConcurrency?: number;
  /**
   * A poll still unanswered this many seconds past its `wait` leases nothing, and jobs it had leased go back to the
   * queue (default POLL_ANSWER_GRACE_SECONDS). Agents give up on a poll `wait` + 15 s after sending it.
   */
  pollAnswerGraceSeconds?: number;
  /** The process's open-file limit (default: read from /proc/self/limits; tests). */
  openFileLimit?: number | null;
  now?: () => Date;
}

/** The `error` of a 403 for a node key whose enrolment waits for an admin's approval. */
export const ENROLLMENT_PENDING = HttpErrorCode.EnrollmentPending;
/** The `error` of a 429 for one long poll too many from the same agent. */
export const TOO_MANY_POLLS = HttpErrorCode.TooManyPolls;

/** File descriptors kept aside from held polls for the database pool, Temporal, logs, files and new connections. */
const FD_RESERVE = 1024;

/**
 * How many long polls one process may hold open when its open-file limit is `limit`: each held poll is a socket,
 * and the process needs descriptors for everything else too (the Temporal worker's sandbox among them), so held
 * polls get half of what is left after FD_RESERVE. Unknown limit: 4096.
 */
export function defaultMaxHeldPolls(limit: number | null): number {
  if (limit === null || !Number.isFinite(limit)) return 4096;
  return Math.max(16, Math.floor((limit - FD_RESERVE) / 2));
}

/** The soft open-file limit (`ulimit -n`) of this process, from /proc/self/limits; null where that is not readable. */
export function readOpenFileLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m) return null;
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

const OVERLOAD_SQLSTATES = new Set([
  '53000', // insufficient_resources
  '53300', // too_many_connections
  '57P01', // admin_shutdown (PostgreSQL stopped or restarted: the connection is cut)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57014', // query_canceled (statement timeout)
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08006', // connection_failure
]);
const OVERLOAD_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']);
const OVERLOAD_MESSAGES =
  /timeout exceeded when trying to connect|Connection terminated|connection timeout|Client has encountered a connection error|sorry, too many clients/i;

/**
 * True when an error means the database is overloaded or briefly away rather than that the request was wrong: the
 * pool timed out (node-postgres: "timeout exceeded when trying to connect"), the server refused more connections, a
 * statement timed out or lost a deadlock. Looks through `cause` (drizzle wraps driver errors).
 */
export function isOverload(e: unknown): boolean {
  return overloadReason(e) !== null;
}

/** What made `e` an overload (isOverload): the SQLSTATE or errno, else the message that matched; null if none. */
export function overloadReason(e: unknown): string | null {
  for (
    let err = e, depth = 0;
    err && typeof err === 'object' && depth < 5;
    err = (err as { cause?: unknown }).cause, depth++
  ) {
    const { code, message } = err as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (OVERLOAD_SQLSTATES.has(code) || OVERLOAD_ERRNOS.has(code))) return code;
    if (typeof message === 'string' && OVERLOAD_MESSAGES.test(message)) return message.slice(0, 80);
  }
  return null;
}

/**
 * Seconds past a poll's `wait` within which its answer may still carry jobs. Agents give up 15 s past it
 * (GatewayClient.poll), so an answer later than this could reach an agent that has given up, and its jobs would wait
 * out their lease; a server that stalls (an overloaded machine) hands them back instead.
 */
export const POLL_ANSWER_GRACE_SECONDS = 10;

/**
 * The most polls one lease statement serves. Each answer may start a job whose result the gateway must then take in
 * (a scan's is 200 patches), so a statement's answers are a burst of work: 100 bounds it and still leases a 5,000
 * endpoint wave in a few dozen statements. (10k cycle bench: approval → verified 62.8 s with 500, 73.4 s with 100,
 * within this machine's run-to-run noise; the scan stage the same with both and with the unbatched code.)
 */
const LEASE_BATCH = 100;

/** How long past its `wait` a poll with work waits for a lease statement (well inside POLL_ANSWER_GRACE_SECONDS). */
const LEASE_WAIT_SLACK_MS = 1000;

/** A refusal the gateway answers with its own status and error code (not one of the domain's CodedErrors). */
export interface AgentGateway {
  routes: RouteModule;
  /** Wakes the long polls of these endpoints (jobs were just dispatched for them). */
  wake(endpointIds: readonly string[]): void;
  /** Stops the refresh loop and answers every waiting poll. */
  close(): Promise<void>;
  stats(): {
    cachedKeys: number;
    withWork: number;
    waiting: number;
    polls: number;
    /** Lease statements run (each for every poll that asked since the one before: StatementBatcher). */
    leaseQueries: number;
    /** Polls those statements leased for. */
    polledLeases: number;
    /** Install, verify and rollback results offered to batched statements (recordPatchJobResults), and those statements. */
    batchedResults: number;
    resultStatements: number;
    /** Times polls with work waited for a lease statement, because requests were waiting for the database. */
    leasesDeferred: number;
    /** The most lease statements that ran at once (at most leaseConcurrency). */
    maxLeasesInFlight: number;
    /** Polls whose agent said its previous poll ended without an answer (`lost=1`): its older leases offered again. */
    lostPolls: number;
    /** Jobs leased to a poll whose agent hung up before the answer, and queued again at once. */
    jobsHandedBack: number;
    downloadTokensSigned: number;
    /** Long polls held open now, and the most this process holds. */
    heldPolls: number;
    maxHeldPolls: number;
    /** Polls answered at once because maxHeldPolls were held. */
    pollsNotHeld: number;
    /** Requests answered 503 because the database was overloaded (or shed before queueing for it). */
    overloaded: number;
  };
}

const waitQuerySchema = z.object({
  wait: z.coerce.number().min(0).max(3600).default(0),
  /** `lost=1`: a poll of the agent got no answer, and it holds none of its jobs (docs/agent.md). */
  lost: z.enum(['0', '1']).optional(),
});
const jobIdSchema = z.object({ id: z.string().min(1).max(512) });
const sha256ParamSchema = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256') });

/** Who a request's Bearer credential belongs to. */
type Caller = ({ kind: 'agent' } & KeyEntry) | { kind: 'distribution-point'; name: string; site: string };

/** How long a distribution point's token is trusted from the cache before it is read again (re-registering rotates it). */
const DP_TOKEN_TTL_MS = 30_000;
/** How long an unknown key, or one waiting for approval, is answered from memory (approved keys must work soon). */
const KEY_REFUSAL_TTL_MS = 2000;

const bearer = (req: FastifyRequest): string | null => {
  const header = req.headers.authorization;
  const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  return m ? m[1]! : null;
};

const pendingRefusal = (endpointId: string) =>
  new HttpError(
    HttpErrorCode.EnrollmentPending,
    `this agent's enrolment of ${endpointId} waits for an admin: the machine is enrolled already, and re-enrolling it needs its current node key or approval. ` +
      `An admin approves it with \`patchops agents approve ${endpointId}\` (see \`patchops agents list\`); until then this key is refused and the endpoint's current agent keeps its jobs`,
  );

export function createAgentGateway(o: AgentGatewayOptions): AgentGateway {
  const db = o.database.db;
  const log = o.logger;
  const now = o.now ?? (() => new Date());
  const leaseSeconds = o.leaseSeconds ?? 600;
  const refreshMs = o.refreshMs ?? 300;
  const maxWait = o.maxWaitSeconds ?? 60;
  const pollAnswerGraceSeconds = o.pollAnswerGraceSeconds ?? POLL_ANSWER_GRACE_SECONDS;
  const pollInterval = o.pollIntervalSeconds ?? 5;
  const dbQueueLimit = o.dbQueueLimit ?? Infinity;
  const leaseQueueLimit = o.leaseQueueLimit ?? 1;
  // Retry-After for overload: about as long as the database queue takes to drain (QueueDrain).
  const drain = new QueueDrain();
  const onAcquire = () => drain.served();
  o.database.pool?.on('acquire', onAcquire);
  const overloadedError = (message: string) =>
    new HttpError(HttpErrorCode.Overloaded, message, {
      'retry-after': String(drain.retryAfterSeconds(o.database.pool?.waitingCount ?? 0)),
    });
  const dpRefreshMs = o.distributionPointsRefreshMs ?? 30_000;

  const fdLimit = o.openFileLimit !== undefined ? o.openFileLimit : readOpenFileLimit();
  const fdAllows = defaultMaxHeldPolls(fdLimit);
  const slots = new PollSlots(o.maxConcurrentPollsPerAgent ?? 2, o.maxHeldPolls ?? fdAllows);
  if (o.maxHeldPolls !== undefined && fdLimit !== null && o.maxHeldPolls > fdAllows) {
    const maxHeldPolls = slots.maxHeld;
    log.warn(
      { maxHeldPolls, openFileLimit: fdLimit, fdAllows },
      `agent gateway: AGENT_MAX_HELD_POLLS=${maxHeldPolls} needs about ${maxHeldPolls * 2 + FD_RESERVE} open files but the limit (ulimit -n) is ${fdLimit}: ` +
        `raise the limit (LimitNOFILE= in the systemd unit, or ulimit -n) or lower AGENT_MAX_HELD_POLLS to ${fdAllows}, or the process can run out of file descriptors under load`,
    );
  } else {
    log.info(
      { maxHeldPolls: slots.maxHeld, openFileLimit: fdLimit },
      `agent gateway: holds at most ${slots.maxHeld} long polls (open-file limit ${fdLimit ?? 'unknown'}); more are answered at once with Retry-After`,
    );
  }

  const keys = new NodeKeyCache();
  const unknownKeys = new TtlCache<string, true>({ ttlMs: KEY_REFUSAL_TTL_MS, maxEntries: 10_000 }); // sha256(unknown key)
  const pendingKeys = new TtlCache<string, string>({ ttlMs: KEY_REFUSAL_TTL_MS, maxEntries: 10_000 }); // sha256(key waiting) → endpoint
  const dpTokens = new TtlCache<string, { name: string; site: string }>({ ttlMs: DP_TOKEN_TTL_MS, maxEntries: 1000 }); // sha256(token) → point
  const hint = new WorkHint();
  const waiters = new WorkWaiters();
  // The manifest-signing key, loaded once (it signs download tokens; its public half is whoami's tokenKey).
  const signingKey = new RetryingLazy(async () => {
    const k = await activeSigningKey(db, o.secretBox);
    return { publicKey: k.publicKey, privateKey: createPrivateKey(k.privateKey) };
  });
  const downloadTokens = new DownloadTokenIssuer(
    () => signingKey.get(),
    () => now().getTime(),
  );
  const seen = new SeenBatch();
  const dpBySite = new ReloadedValue(new Map<string, string[]>(), dpRefreshMs);
  let siteCursor: number | undefined;
  // Revocations older than start-up are not in the cache anyway: start the cursor now.
  let revokedCursor = new Date(now().getTime() - 1000);
  let closed = false;
  let polls = 0;
  /** The newest poll of each agent with one in progress (a sequence number): older ones are superseded. */
  const latestPoll = new Map<string, number>();
  let pollSeq = 0;
  let lostPolls = 0;
  let jobsHandedBack = 0;
  let overloaded = 0;

  /** Syncs with the database: last-seen out; work hint, revocations, site changes and distribution points in. */
  async function refresh(): Promise<void> {
    const t = now();
    const touched = seen.take();
    try {
      await touchEndpoints(db, touched, t);
    } catch (err) {
      seen.putBack(touched);
      log.warn({ err }, 'agent gateway: could not record last-seen; will retry');
    }
    try {
      const ids = await endpointsWithWork(db, t);
      hint.refreshed(ids);
      waiters.wakeAny(ids);
    } catch (err) {
      hint.refreshFailed();
      log.warn({ err }, 'agent gateway: could not refresh the work hint');
    }
    try {
      const { hashes, latest } = await keysRevokedSince(db, revokedCursor);
      for (const h of hashes) keys.forget(h);
      if (latest) revokedCursor = latest;
    } catch (err) {
      log.warn({ err }, 'agent gateway: could not refresh revocations');
    }
    try {
      if (siteCursor === undefined) siteCursor = await lastSiteChangeId(db);
      else {
        const changed = await siteChangesSince(db, siteCursor);
        for (const id of changed.endpointIds) keys.forgetEndpoint(id);
        siteCursor = changed.lastId;
      }
      await dpBySite.reloadIfDue(() => distributionPointsBySite(db));
    } catch (err) {
      log.warn({ err }, 'agent gateway: could not refresh sites and distribution points');
    }
  }

  const refreshLoop = repeatEvery(refresh, refreshMs);

  /** Database errors answered 503 since the last summary, by reason (overloadReason): one warning a minute. */
  const overloadReasons = new Map<string, number>();
  const overloadSummary = repeatEvery(
    async () => {
      if (overloadReasons.size === 0) return;
      const reasons = Object.fromEntries(overloadReasons);
      overloadReasons.clear();
      log.warn({ reasons }, 'agent gateway: database errors answered 503 (Retry-After) in the last minute');
    },
    60_000,
    { runAtStart: false, unref: true },
  );

  /** The endpoint a node key belongs to: from the cache, else the database (unknown keys are remembered briefly). */
  async function agentForKey(key: string, hash: string): Promise<KeyEntry | null> {
    const cached = keys.get(hash);
    if (cached) return cached;
    if (unknownKeys.has(hash)) return null;
    const found = await endpointForKey(db, key);
    if (found) keys.remember(hash, found);
    return found;
  }

  /** Throws the ENROLLMENT_PENDING refusal when the key belongs to an enrolment waiting for approval. */
  async function refuseIfPending(key: string, hash: string): Promise<void> {
    const pending = await pendingEnrollmentForKey(db, key);
    if (!pending) return;
    pendingKeys.set(hash, pending.endpointId);
    throw pendingRefusal(pending.endpointId);
  }

  async function authenticate(req: FastifyRequest): Promise<KeyEntry> {
    const key = bearer(req);
    if (!key)
      throw new CodedError(
        ErrorCode.Unauthorized,
        'missing node key: send "Authorization: Bearer <node key>" (enrol first: POST /agent/v1/enroll)',
      );
    const hash = sha256Hex(key);
    const pending = pendingKeys.get(hash);
    if (pending !== undefined) throw pendingRefusal(pending);
    const found = await agentForKey(key, hash);
    if (found) return found;
    await refuseIfPending(key, hash);
    unknownKeys.set(hash, true);
    throw new CodedError(ErrorCode.Unauthorized, 'unknown or revoked node key: re-enrol the agent');
  }

  /** An agent's node key or a registered distribution point's token (files and whoami accept both). */
  async function authenticateAgentOrPoint(req: FastifyRequest): Promise<Caller> {
    const token = bearer(req);
    const refused =
      'send "Authorization: Bearer <node key>" (agents) or "Authorization: Bearer <distribution point token>" (from `patchops distribution-point-register`)';
    if (!token) throw new CodedError(ErrorCode.Unauthorized, `missing credentials: ${refused}`);
    const hash = sha256Hex(token);
    const dp = dpTokens.get(hash);
    if (dp) return { kind: 'distribution-point', ...dp };
    if (unknownKeys.has(hash))
      throw new CodedError(ErrorCode.Unauthorized, `unknown or revoked credentials: ${refused}`);
    const agent = await agentForKey(token, hash);
    if (agent) return { kind: 'agent', ...agent };
    const point = await distributionPointForToken(db, token);
    if (point) {
      dpTokens.set(hash, point);
      return { kind: 'distribution-point', ...point };
    }
    dpTokens.delete(hash);
    unknownKeys.set(hash, true);
    throw new CodedError(ErrorCode.Unauthorized, `unknown or revoked credentials: ${refused}`);
  }

  /**
   * A lease statement may start when fewer than leaseQueueLimit requests wait for a connection, one is free now, and
   * fewer than leaseConcurrency statements run. Polls that ask meanwhile wait for the next statement (StatementBatcher).
   */
  const leaseMayStart = (inFlight: number) => {
    const pool = o.database.pool;
    if (!pool) return inFlight < (o.leaseConcurrency ?? 1);
    if (pool.waitingCount >= leaseQueueLimit) return false;
    const max = pool.options.max ?? 10;
    if (inFlight >= (o.leaseConcurrency ?? Math.max(1, Math.floor(max / 2)))) return false;
    return pool.idleCount > 0 || pool.totalCount < max;
  };
  const leases = new StatementBatcher<
    { key: string; endpointId: string; reclaimBefore?: Date; dropped(): boolean },
    AgentJob[]
  >({
    run: async (asks) => {
      const leased = await leaseJobsForMany(db, asks, { now: now(), leaseSeconds });
      return asks.map((a) => leased.get(a.endpointId) ?? []);
    },
    mayStart: leaseMayStart,
    maxBatch: LEASE_BATCH,
  });
  // Install, verify and rollback results that arrive together: one statement and one commit for up to 200 of them,
  // at most two at once (they share the per-patch counter rows, whose locks are held until commit). A statement that
  // fails takes none of them, and each goes to recordJobResult's transaction alone, which answers it as it would.
  const results = new StatementBatcher<PatchJobReport & { key: string }, boolean>({
    run: async (reports) => {
      try {
        const recorded = await recordPatchJobResults(db, reports, now());
        return reports.map((r) => recorded.has(r.jobId));
      } catch (err) {
        // Visible once per statement; each of its results is then recorded alone (recordPatchResult below).
        log.warn(
          { err, results: reports.length, reason: overloadReason(err) },
          'agent gateway: a batched result statement failed; its results are recorded one by one',
        );
        throw err;
      }
    },
    mayStart: (inFlight) => inFlight < 2,
    maxBatch: 200,
  });
  const recordPatchResult = async (report: PatchJobReport) =>
    (await results.submit({ ...report, key: report.endpointId }).catch(() => null)) === true;

  /** Sheds a request at once (503) when this many others already wait for a database connection. */
  const shedIfQueued = () => {
    const waiting = o.database.pool?.waitingCount ?? 0;
    if (waiting >= dbQueueLimit)
      throw overloadedError(
        `the server is busy (${waiting} requests wait for the database): retry after the Retry-After delay`,
      );
  };

  /**
   * The gateway's one error path: an overloaded database becomes 503 OVERLOADED with Retry-After (expected during a
   * burst, thousands a minute: counted in stats(), each logged at debug only, summed by reason in one warning a
   * minute); everything goes through the server's one error mapping (errors.ts): coded errors by code, zod and
   * database data errors as 400, never SQL or a stack.
   */
  const handleError = (e: unknown, req: FastifyRequest, reply: FastifyReply) => {
    let err = e;
    const reason = e instanceof HttpError ? null : overloadReason(e);
    if (reason !== null) {
      log.debug({ err: e }, 'agent gateway: database overloaded; answered 503');
      err = overloadedError('the server is busy (its database is overloaded): retry after the Retry-After delay');
      overloadReasons.set(reason, (overloadReasons.get(reason) ?? 0) + 1);
    }
    if (err instanceof HttpError && err.code === HttpErrorCode.Overloaded) overloaded += 1;
    return sendError(req, reply, err, log);
  };

  /**
   * Waits up to `waitSeconds` for work and leases it. Ends early, leasing nothing, once the agent has hung up
   * (`hungUp`); jobs leased just as it hung up are handed straight back (`returnLeasedJobs`), never left waiting
   * out a lease nobody holds.
   */
  async function poll(
    endpointId: string,
    waitSeconds: number,
    hungUp: () => boolean,
    reclaimBefore?: Date,
  ): Promise<{ jobs: AgentJob[]; lostChecked: boolean }> {
    polls += 1;
    const until = Date.now() + Math.min(waitSeconds, maxWait) * 1000;
    // The agent lost its last answer: its jobs leased before this poll are looked for once, whatever the hint says.
    // Until that lease query has run (a busy server may end the poll first), the answer does not say lostChecked.
    let reclaim = reclaimBefore !== undefined;
    let lostChecked = false;
    const none = () => ({ jobs: [], lostChecked });
    const mayHaveWork = () => reclaim || hint.mayHaveWork(endpointId);
    for (;;) {
      if (closed || hungUp()) return none();
      if (mayHaveWork()) {
        shedIfQueued();
        // With the polls woken alongside it, in one statement once a connection is free (StatementBatcher). Dropped
        // unrun when the agent hangs up meanwhile or the poll's time is up: a lease never queues for a connection,
        // whose answer could come after the agent gave up while the jobs wait out their lease.
        const giveUpAt = Math.max(until, Date.now()) + LEASE_WAIT_SLACK_MS;
        const jobs = await leases.submit({
          key: endpointId,
          endpointId,
          ...(reclaim ? { reclaimBefore } : {}),
          dropped: () => closed || hungUp() || Date.now() > giveUpAt,
        });
        if (jobs === null) return none();
        if (reclaim) [reclaim, lostChecked] = [false, true];
        if (jobs.length > 0 && hungUp()) {
          await handBack(endpointId, jobs);
          return none();
        }
        if (jobs.length > 0) return { jobs, lostChecked };
        hint.noWork(endpointId);
        // Superseded (or hung up) while the statement ran: its wake-up has come and gone.
        if (closed || hungUp()) return none();
      }
      const remaining = until - Date.now();
      if (remaining <= 0) return none();
      await waiters.wait(endpointId, remaining);
    }
  }

  /** Jobs leased to a poll that cannot answer: queued again for the agent's next poll. */
  async function handBack(endpointId: string, jobs: AgentJob[]) {
    const n = await returnLeasedJobs(db, endpointId, jobs);
    jobsHandedBack += n;
    hint.add(endpointId);
    waiters.wake(endpointId); // the agent's newer poll, if one is held, takes them now
    log.debug(
      { endpointId, jobs: n },
      'agent gateway: the agent hung up before its poll was answered; jobs handed back',
    );
  }

  const routes: RouteModule = async (app: FastifyInstance) => {
    if (o.envEnrollSecret) await ensureEnvEnrollSecret(db, o.envEnrollSecret);
    app.addHook('preClose', async () => {
      await gateway.close();
    });
    await app.register(
      async (r) => {
        r.setErrorHandler(handleError);

        r.post('/enroll', async (req, reply) => {
          const body = enrollRequestSchema.parse(req.body);
          // Re-enrolling a known machine needs its current node key (sent as the Bearer credential) or an admin.
          const currentNodeKey = bearer(req) ?? undefined;
          // The key first: once the enrolment commits, nothing may fail (a 503 after it would make the agent's retry
          // a second enrolment of a known machine without its node key, which waits for an admin).
          const key = await signingKey.get();
          shedIfQueued();
          const enrolled = await enrollAgent(db, body, now(), {
            currentNodeKey,
            remoteAddress: req.ip,
            scanOnFirstEnrolment: o.scanOnFirstEnrolment,
          });
          const res: EnrollResponse = {
            endpointId: enrolled.endpointId,
            nodeKey: enrolled.nodeKey,
            manifestSigningKey: key.publicKey,
            protocolVersion: AGENT_PROTOCOL_VERSION,
            pollIntervalSeconds: pollInterval,
          };
          if (enrolled.pending) {
            const logged = {
              endpointId: enrolled.endpointId,
              hostname: body.hostname,
              remoteAddress: req.ip,
              duplicateSuspected: enrolled.duplicateSuspected,
            };
            if (enrolled.duplicateSuspected)
              log.warn(logged, 'a second live agent claims an enrolled machine id: its enrolment waits for an admin');
            else log.info(logged, 're-enrolment without the current node key waits for an admin');
            res.pending = true;
            res.message = pendingRefusal(enrolled.endpointId).message;
            return reply.code(202).send(res);
          }
          log.info(
            {
              endpointId: enrolled.endpointId,
              hostname: body.hostname,
              reenrolled: enrolled.reenrolled,
              scanQueued: enrolled.scanQueued,
            },
            'agent enrolled',
          );
          if (enrolled.scanQueued) gateway.wake([enrolled.endpointId]);
          return reply.code(200).send(res);
        });

        r.get('/jobs', async (req, reply) => {
          const who = await authenticate(req);
          const { wait, lost } = waitQuerySchema.parse(req.query);
          if (lost === '1') lostPolls += 1;
          seen.add(who.endpointId);
          const open = slots.openOf(who.endpointId);
          if (open >= slots.maxPerAgent) {
            throw new HttpError(
              HttpErrorCode.TooManyPolls,
              `this agent holds ${open} long polls open already (at most ${slots.maxPerAgent}): wait for one to answer before polling again`,
              { 'retry-after': String(pollInterval) },
            );
          }
          // Every held poll is a socket: past the cap, answer at once and tell the agent when to come back.
          const slot = slots.enter(who.endpointId, wait > 0);
          if (wait > 0 && !slot.hold)
            void reply.header('retry-after', String(pollInterval + Math.floor(Math.random() * pollInterval * 2)));
          // An agent that hangs up (its own time-out, a restart) ends its poll: nothing is leased to a closed socket.
          let hungUp = false;
          const onClose = () => {
            if (reply.raw.writableEnded) return;
            hungUp = true;
            waiters.wake(who.endpointId);
          };
          reply.raw.once('close', onClose);
          // Past this the agent may have given up on the answer (agents wait `wait` + 15 s): jobs are not leased to
          // it then, and jobs leased just before go back to the queue instead of into a socket nobody may read.
          const late = () => reply.elapsedTime > (wait + pollAnswerGraceSeconds) * 1000;
          // A newer poll of the same agent supersedes this one: agents poll one at a time, so the agent gave up on
          // this one (its time-out) even if the server has not seen the socket close, and what this poll leases now
          // would reach nobody. Nothing is leased to it; jobs it leased go back for the newer poll. (A poll the
          // server read late may lease after the newer one arrived: the newer one's lost=1 cannot cover that.)
          const seq = ++pollSeq;
          const superseded = () => (latestPoll.get(who.endpointId) ?? seq) !== seq;
          if (latestPoll.has(who.endpointId)) waiters.wake(who.endpointId);
          latestPoll.set(who.endpointId, seq);
          const cannotAnswer = () => hungUp || reply.raw.destroyed || late() || superseded();
          let jobs: AgentJob[];
          let lostChecked: boolean;
          try {
            ({ jobs, lostChecked } = await poll(
              who.endpointId,
              slot.hold ? wait : 0,
              cannotAnswer,
              lost === '1' ? new Date(Date.now() - reply.elapsedTime) : undefined,
            ));
          } finally {
            slot.leave();
            reply.raw.off('close', onClose);
            if (!superseded()) latestPoll.delete(who.endpointId);
          }
          try {
            const distributionPoints = who.site ? (dpBySite.value.get(who.site) ?? []) : [];
            const res: PollResponse = { jobs, distributionPoints, ...(lostChecked ? { lostChecked } : {}) };
            if (who.site && distributionPoints.length > 0)
              res.downloadToken = await downloadTokens.tokenFor(who.endpointId, who.site);
            if (jobs.length > 0 && cannotAnswer()) {
              await handBack(who.endpointId, jobs);
              if (hungUp || reply.raw.destroyed) return reply;
              // Handed back, they are queued: the next poll gets them whether or not it says lost.
              return reply.send({ ...res, jobs: [] } satisfies PollResponse);
            }
            return reply.send(res);
          } catch (e) {
            await handBack(who.endpointId, jobs).catch(() => undefined);
            throw e;
          }
        });

        // The owning agent keeps a long job (an install past the lease) from being offered again or marked unreachable.
        r.post('/jobs/:id/lease', async (req, reply) => {
          const who = await authenticate(req);
          const { id } = jobIdSchema.parse(req.params);
          seen.add(who.endpointId);
          const renewed = await renewJobLease(db, who.endpointId, id, {
            now: now(),
            leaseSeconds,
            deadlineGraceSeconds: o.leaseDeadlineGraceSeconds,
          });
          const res: LeaseRenewalResponse = { leaseExpiresAt: renewed.leaseExpiresAt.toISOString() };
          return reply.send(res);
        });

        r.post('/jobs/:id/result', async (req, reply) => {
          const who = await authenticate(req);
          const { id } = jobIdSchema.parse(req.params);
          const result = jobResultSchema.parse(req.body);
          seen.add(who.endpointId);
          shedIfQueued();
          const { outcome, refused } = await recordJobResult(db, who.endpointId, id, result, now(), {
            recordPatchResult,
          });
          log.info({ endpointId: who.endpointId, jobId: id, status: result.status, outcome }, 'agent job result');
          if (refused.length > 0)
            log.warn(
              { endpointId: who.endpointId, jobId: id, refused: refused.length, first: refused[0] },
              'agent reported packages outside their backend grammar: refused',
            );
          return reply.send({ ok: true, outcome, ...(refused.length > 0 ? { refused } : {}) });
        });

        r.put('/inventory', async (req, reply) => {
          const who = await authenticate(req);
          const inv = inventorySchema.parse(req.body);
          shedIfQueued();
          const stored = await putInventory(db, who.endpointId, inv, now());
          return reply.send({ ok: true, ...stored });
        });

        r.get('/manifest', async (req, reply) => {
          await authenticate(req);
          const m = await latestManifest(db);
          if (!m) throw new CodedError(ErrorCode.NotFound, 'no repository manifest has been published yet');
          return reply.send(m);
        });

        // Who a credential belongs to. Distribution points learn their name and site, and the key download tokens
        // verify with (tokenKey); they ask about downstream points' tokens too. Node keys never reach points.
        r.get('/whoami', async (req, reply) => {
          const who = await authenticateAgentOrPoint(req);
          const res: WhoamiResponse =
            who.kind === 'agent'
              ? { kind: 'agent', endpointId: who.endpointId, site: who.site }
              : { ...who, tokenKey: (await signingKey.get()).publicKey };
          return reply.send(res);
        });

        // Files only for enrolled agents and registered distribution points; integrity comes from the signed manifest.
        r.get('/files/:sha256', async (req, reply) => {
          await authenticateAgentOrPoint(req);
          const { sha256 } = sha256ParamSchema.parse(req.params);
          if (!o.repositoryDir) throw new CodedError(ErrorCode.NotFound, 'this server has no repository directory');
          const file = path.join(o.repositoryDir, sha256);
          const stat = await fs.stat(file).catch(() => null);
          if (!stat?.isFile()) throw new CodedError(ErrorCode.NotFound, `no file ${sha256} in the repository`);
          return reply
            .header('content-type', 'application/octet-stream')
            .header('content-length', stat.size)
            .send(createReadStream(file));
        });
      },
      { prefix: '/agent/v1' },
    );
  };

  const gateway: AgentGateway = {
    routes,
    wake(endpointIds) {
      for (const id of endpointIds) {
        hint.add(id);
        waiters.wake(id);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      o.database.pool?.off('acquire', onAcquire);
      waiters.wakeAll();
      leases.close();
      results.close();
      await refreshLoop.stop();
      await overloadSummary.stop();
      if (seen.size > 0) await touchEndpoints(db, seen.take(), now()).catch(() => undefined);
    },
    stats: () => ({
      cachedKeys: keys.size,
      withWork: hint.size,
      waiting: waiters.size,
      polls,
      leaseQueries: leases.statements,
      polledLeases: leases.carried,
      resultStatements: results.statements,
      batchedResults: results.carried,
      leasesDeferred: leases.deferred,
      maxLeasesInFlight: leases.maxInFlight,
      lostPolls,
      jobsHandedBack,
      downloadTokensSigned: downloadTokens.signed,
      heldPolls: slots.held,
      maxHeldPolls: slots.maxHeld,
      pollsNotHeld: slots.notHeld,
      overloaded,
    }),
  };
  return gateway;
}
