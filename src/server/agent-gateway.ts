/**
 * The agent gateway, mounted at /agent/v1: enrolment, long-poll job leasing, results, inventory, the signed
 * repository manifest and the repository's files. Agents authenticate with `Authorization: Bearer <node key>`.
 *
 * Idle polls are cheap: node keys are resolved from an in-memory cache (revocations are picked up from the
 * database every refresh), last-seen is written in batches, and an in-process "has work" set, refreshed from
 * the database every few hundred ms (and woken by notifyAgentWork), decides whether a poll needs a lease query.
 * Correctness does not depend on the hint: the lease itself is the database's FOR UPDATE SKIP LOCKED claim, and
 * the refresh re-reads the truth.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  distributionPointsBySite,
  endpointForKey,
  endpointsWithWork,
  enrollAgent,
  ensureEnvEnrollSecret,
  keysRevokedSince,
  latestManifest,
  activeSigningKey,
  leaseJobs,
  putInventory,
  recordJobResult,
  sha256Hex,
  touchEndpoints,
} from '../db/agents';
import type { Database } from '../db/client';
import { CodedError, ErrorCode, isCodedError } from '../domain/errors';
import type { Logger } from '../logging';
import {
  AGENT_PROTOCOL_VERSION,
  enrollRequestSchema,
  inventorySchema,
  jobResultSchema,
  type EnrollResponse,
  type PollResponse,
} from '../shared/agent-protocol';
import type { RouteModule } from './app';

export interface AgentGatewayOptions {
  database: Database;
  logger: Logger;
  /** How long a handed-out job stays the agent's before it is offered again. */
  leaseSeconds?: number;
  /** How often the "has work" set, revocations and last-seen are synced with the database. */
  refreshMs?: number;
  /** Longest long-poll an agent may ask for. */
  maxWaitSeconds?: number;
  /** What agents are told to wait between polls. */
  pollIntervalSeconds?: number;
  /** Where the central repository's files live, named by their sha256. */
  repositoryDir?: string;
  /** AGENT_ENROLL_SECRET: kept active as an enrol secret beside those added with `patchops enroll-secret add`. */
  envEnrollSecret?: string;
  now?: () => Date;
}

export interface AgentGateway {
  routes: RouteModule;
  /** Wakes the long polls of these endpoints (jobs were just dispatched for them). */
  wake(endpointIds: readonly string[]): void;
  /** Stops the refresh loop and answers every waiting poll. */
  close(): Promise<void>;
  stats(): { cachedKeys: number; withWork: number; waiting: number; polls: number; leaseQueries: number };
}

const gateways = new Set<AgentGateway>();

/** For code in the same process that dispatches jobs: wakes waiting polls at once instead of at the next refresh. */
export function notifyAgentWork(endpointIds: readonly string[]): void {
  for (const g of gateways) g.wake(endpointIds);
}

const waitQuerySchema = z.object({ wait: z.coerce.number().min(0).max(3600).default(0) });
const jobIdSchema = z.object({ id: z.string().min(1).max(512) });
const sha256ParamSchema = z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256') });

interface KeyEntry {
  endpointId: string;
  site: string | null;
}

export function createAgentGateway(o: AgentGatewayOptions): AgentGateway {
  const db = o.database.db;
  const log = o.logger;
  const now = o.now ?? (() => new Date());
  const leaseSeconds = o.leaseSeconds ?? 600;
  const refreshMs = o.refreshMs ?? 300;
  const maxWait = o.maxWaitSeconds ?? 60;
  const pollInterval = o.pollIntervalSeconds ?? 5;

  const keys = new Map<string, KeyEntry>(); // sha256(node key) → endpoint
  const negative = new Map<string, number>(); // sha256(unknown key) → until (ms)
  const seen = new Set<string>();
  let withWork = new Set<string>();
  let hintReady = false;
  const waiters = new Map<string, Set<() => void>>();
  let dpBySite = new Map<string, string[]>();
  let revokedCursor = new Date(0);
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> | undefined;
  let refreshCount = 0;
  let polls = 0;
  let leaseQueries = 0;

  const wakeOne = (endpointId: string) => {
    const set = waiters.get(endpointId);
    if (!set) return;
    waiters.delete(endpointId);
    for (const fn of set) fn();
  };

  async function refresh(): Promise<void> {
    const t = now();
    const touched = [...seen];
    seen.clear();
    try {
      await touchEndpoints(db, touched, t);
    } catch (err) {
      for (const id of touched) seen.add(id);
      log.warn({ err }, 'agent gateway: could not record last-seen; will retry');
    }
    try {
      const ids = await endpointsWithWork(db, t);
      withWork = new Set(ids);
      hintReady = true;
      for (const id of ids) if (waiters.has(id)) wakeOne(id);
    } catch (err) {
      hintReady = false; // fall back to asking the database on every poll
      log.warn({ err }, 'agent gateway: could not refresh the work hint');
    }
    try {
      const { hashes, latest } = await keysRevokedSince(db, revokedCursor);
      for (const h of hashes) keys.delete(h);
      if (latest) revokedCursor = latest;
      if (refreshCount++ % 100 === 0) dpBySite = await distributionPointsBySite(db);
    } catch (err) {
      log.warn({ err }, 'agent gateway: could not refresh revocations');
    }
  }

  const loop = () => {
    if (closed) return;
    refreshing = refresh().finally(() => {
      refreshing = undefined;
      if (!closed) timer = setTimeout(loop, refreshMs);
    });
  };
  // Revocations older than start-up are not in the cache anyway: start the cursor now.
  revokedCursor = new Date(now().getTime() - 1000);
  loop();

  async function authenticate(req: FastifyRequest): Promise<KeyEntry> {
    const header = req.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!m) throw new CodedError(ErrorCode.Unauthorized, 'missing node key: send "Authorization: Bearer <node key>" (enrol first: POST /agent/v1/enroll)');
    const hash = sha256Hex(m[1]!);
    const cached = keys.get(hash);
    if (cached) return cached;
    const neg = negative.get(hash);
    if (neg !== undefined && neg > Date.now()) throw new CodedError(ErrorCode.Unauthorized, 'unknown or revoked node key: re-enrol the agent');
    const found = await endpointForKey(db, m[1]!);
    if (!found) {
      if (negative.size > 10_000) negative.clear();
      negative.set(hash, Date.now() + 2000);
      throw new CodedError(ErrorCode.Unauthorized, 'unknown or revoked node key: re-enrol the agent');
    }
    keys.set(hash, found);
    return found;
  }

  const send = (reply: FastifyReply, e: unknown) => {
    if (e instanceof z.ZodError) {
      const message = e.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
      return reply.code(400).send({ error: ErrorCode.InvalidInput, message });
    }
    if (isCodedError(e)) {
      const status =
        e.code === ErrorCode.Unauthorized ? 401 : e.code === ErrorCode.Forbidden ? 403 : e.code === ErrorCode.NotFound ? 404 : e.code === ErrorCode.Conflict ? 409 : e.code === ErrorCode.InvalidInput ? 400 : 500;
      return reply.code(status).send({ error: e.code, message: e.message });
    }
    log.error({ err: e }, 'agent gateway: request failed');
    return reply.code(500).send({ error: 'INTERNAL', message: 'the server could not handle the request; it is logged' });
  };

  function waitForWork(endpointId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = waiters.get(endpointId);
      if (!set) waiters.set(endpointId, (set = new Set()));
      const done = () => {
        clearTimeout(t);
        set.delete(done);
        if (set.size === 0 && waiters.get(endpointId) === set) waiters.delete(endpointId);
        resolve();
      };
      const t = setTimeout(done, ms);
      set.add(done);
    });
  }

  async function poll(endpointId: string, waitSeconds: number) {
    polls += 1;
    const until = Date.now() + Math.min(waitSeconds, maxWait) * 1000;
    for (;;) {
      if (closed) return [];
      if (!hintReady || withWork.has(endpointId)) {
        leaseQueries += 1;
        const jobs = await leaseJobs(db, endpointId, { now: now(), leaseSeconds });
        if (jobs.length > 0) return jobs;
        withWork.delete(endpointId);
      }
      const remaining = until - Date.now();
      if (remaining <= 0) return [];
      await waitForWork(endpointId, remaining);
    }
  }

  const routes: RouteModule = async (app: FastifyInstance) => {
    if (o.envEnrollSecret) await ensureEnvEnrollSecret(db, o.envEnrollSecret);
    app.addHook('preClose', async () => {
      await gateway.close();
    });
    await app.register(
      async (r) => {
        r.post('/enroll', async (req, reply) => {
          try {
            const body = enrollRequestSchema.parse(req.body);
            const enrolled = await enrollAgent(db, body, now());
            const key = await activeSigningKey(db);
            log.info({ endpointId: enrolled.endpointId, hostname: body.hostname, reenrolled: enrolled.reenrolled }, 'agent enrolled');
            const res: EnrollResponse = {
              endpointId: enrolled.endpointId,
              nodeKey: enrolled.nodeKey,
              manifestSigningKey: key.publicKey,
              protocolVersion: AGENT_PROTOCOL_VERSION,
              pollIntervalSeconds: pollInterval,
            };
            return reply.code(200).send(res);
          } catch (e) {
            return send(reply, e);
          }
        });

        r.get('/jobs', async (req, reply) => {
          try {
            const who = await authenticate(req);
            const { wait } = waitQuerySchema.parse(req.query);
            seen.add(who.endpointId);
            const jobs = await poll(who.endpointId, wait);
            const res: PollResponse = { jobs, distributionPoints: who.site ? (dpBySite.get(who.site) ?? []) : [] };
            return reply.send(res);
          } catch (e) {
            return send(reply, e);
          }
        });

        r.post('/jobs/:id/result', async (req, reply) => {
          try {
            const who = await authenticate(req);
            const { id } = jobIdSchema.parse(req.params);
            const result = jobResultSchema.parse(req.body);
            seen.add(who.endpointId);
            const outcome = await recordJobResult(db, who.endpointId, id, result, now());
            log.info({ endpointId: who.endpointId, jobId: id, status: result.status, outcome }, 'agent job result');
            return reply.send({ ok: true, outcome });
          } catch (e) {
            return send(reply, e);
          }
        });

        r.put('/inventory', async (req, reply) => {
          try {
            const who = await authenticate(req);
            const inv = inventorySchema.parse(req.body);
            const stored = await putInventory(db, who.endpointId, inv, now());
            return reply.send({ ok: true, ...stored });
          } catch (e) {
            return send(reply, e);
          }
        });

        r.get('/manifest', async (req, reply) => {
          try {
            await authenticate(req);
            const m = await latestManifest(db);
            if (!m) throw new CodedError(ErrorCode.NotFound, 'no repository manifest has been published yet');
            return reply.send(m);
          } catch (e) {
            return send(reply, e);
          }
        });

        // Files are public by content address, like a package mirror: integrity comes from the signed manifest.
        r.get('/files/:sha256', async (req, reply) => {
          try {
            const { sha256 } = sha256ParamSchema.parse(req.params);
            if (!o.repositoryDir) throw new CodedError(ErrorCode.NotFound, 'this server has no repository directory');
            const file = path.join(o.repositoryDir, sha256);
            const stat = await fs.stat(file).catch(() => null);
            if (!stat?.isFile()) throw new CodedError(ErrorCode.NotFound, `no file ${sha256} in the repository`);
            return reply.header('content-type', 'application/octet-stream').header('content-length', stat.size).send(createReadStream(file));
          } catch (e) {
            return send(reply, e);
          }
        });
      },
      { prefix: '/agent/v1' },
    );
  };

  const gateway: AgentGateway = {
    routes,
    wake(endpointIds) {
      for (const id of endpointIds) {
        withWork.add(id);
        wakeOne(id);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      gateways.delete(gateway);
      if (timer) clearTimeout(timer);
      for (const id of [...waiters.keys()]) wakeOne(id);
      await refreshing;
      if (seen.size > 0) await touchEndpoints(db, [...seen], now()).catch(() => undefined);
    },
    stats: () => ({ cachedKeys: keys.size, withWork: withWork.size, waiting: waiters.size, polls, leaseQueries }),
  };
  gateways.add(gateway);
  return gateway;
}
