/**
 * The end-to-end stack on real processes (issue #14): a `patchops server` and a `patchops worker` process
 * (bin/patchops.mjs) on a Temporal dev server and a PostgreSQL database of their own, configured only by their
 * environment, as an operator would, to talk to the fakes this test process runs: the Slack Web API, the Bot
 * Framework connector, ServiceNow (its business rule calls the server's webhook) and an SMTP sink. The agents
 * are simulated fleets, each a `patchops agent-sim --ndjson` process of its own (test/helpers/sim-process.ts),
 * speaking the real agent protocol over HTTP to the server process.
 *
 * A case drives the stack only through public interfaces: the REST API with a token of the first admin
 * (roles, policies, audit verification, cycle status), signed Slack requests, Teams activities, ServiceNow, the
 * agent protocol and the dashboard over HTTP; groups, maintenance windows and blackout dates through
 * `PUT /api/v1/groups/:name` and `/windows/:name`. The one exception is `installJobs`: it reads the jobs table for
 * assertions only (when an install was handed out and for when), which no public interface shows per job.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { inject } from 'vitest';
import type { SimMachine } from '../../src/agent-sim/fleet';
import { installationUpdateActivity } from '../../src/chat/teams/installation';
import { TERMINAL_STAGES, type CycleStatus } from '../../src/domain/cycle';
import type { DeploymentPolicyInput } from '../../src/domain/policy';
import type { FoundPatch } from '../../src/shared/agent-protocol';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort } from './free-port';
import { HttpClient } from '../browser/http-client';
import { startFakeBotConnector, type FakeBotConnector } from '../fakes/bot-connector';
import { ServiceNowFake } from '../fakes/servicenow';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { SmtpSink } from '../fakes/smtp-sink';
import { createTestDatabase, type TestDatabase } from './db';
import { signedHeaders } from './slack-sign';
import { startSimProcess, type SimProcess } from './sim-process';
import { startPatchopsUp, type UpProcess } from './up-process';

export const SLACK_CHANNEL = 'C0PATCHING';
export const TEAMS_CONVERSATION = '19:ops@thread.tacv2';
export const REPORT_RECIPIENT = 'cab@example.test';
const SIGNING_SECRET = 'e2e-signing-secret-abcdef';
const WEBHOOK_SECRET = 'e2e-servicenow-webhook-secret';
const ADMIN_PASSWORD = 'e2e-first-admin-password';

export interface E2eProcessStack {
  /** The database the processes share: for `installJobs` only (see the file comment). */
  db: TestDatabase;
  temporal: DevServer;
  server: UpProcess;
  worker: UpProcess;
  slack: FakeSlackApi;
  connector: FakeBotConnector;
  serviceNow: ServiceNowFake;
  smtp: SmtpSink;
  /** The server process's base URL. */
  url: string;
  /** A call to /api/v1 with the first admin's token; throws on any status but 200. */
  api<T = { text: string; data: Record<string, unknown> }>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    route: string,
    body?: unknown,
  ): Promise<T>;
  /** Grants a role through the API (`POST /api/v1/roles`). */
  grant(identity: string, role: 'admin' | 'approver' | 'viewer', group?: string): Promise<void>;
  /** Stores a policy document through the API (`POST /api/v1/policies`). */
  savePolicy(doc: DeploymentPolicyInput): Promise<void>;
  /**
   * A simulated fleet of `count` Windows machines `<prefix>-<n>` that report `patches` missing, enrolled with the
   * deployment's enrolment secret and polling until the stack closes; resolves once each answered its first scan.
   * Their host names are ServiceNow CIs. The fleet is a process of its own (`patchops agent-sim --ndjson`).
   */
  fleet(o: { prefix: string; count: number; patches: FoundPatch[]; failingMachines?: string[] }): Promise<SimProcess>;
  /** Groups `<name>` of these machines, `test` the test ring, through `PUT /api/v1/groups/:name`. */
  seedGroups(groups: Array<{ name: string; machines: SimMachine[]; test?: boolean; window?: string }>): Promise<void>;
  /** A maintenance window (UTC) for the named groups, through `PUT /api/v1/windows/:name` and `/groups/:name`; returns its id. */
  seedWindow(w: {
    name: string;
    rrule: string;
    durationMinutes: number;
    blackoutDates?: string[];
    groups: string[];
  }): Promise<number>;
  /** The install jobs handed out for the cycle (assertions only), by endpoint id. */
  installJobs(cycleId: string): Promise<Array<{ endpointId: string; notBefore: Date | null; createdAt: Date }>>;
  /** The bot is added to the Teams channel (installationUpdate): its conversation is kept for proactive cards. */
  installTeams(): Promise<void>;
  /** POSTs a body to /slack/events signed as Slack signs it. */
  slackRequest(body: string): Promise<Response>;
  /** An invoke from Teams: Action.Execute of `verb` on the card `replyToId`, by `from`. */
  teamsAction(o: {
    replyToId: string;
    from: string;
    verb: string;
    data: Record<string, unknown>;
  }): Promise<{ statusCode: number; value: unknown }>;
  /** A browser-like client of the dashboard, signed in as the first admin. */
  dashboard(): Promise<HttpClient>;
  /** The cycle's status as `GET /api/v1/cycles/:id` answers it. */
  status(cycleId: string): Promise<CycleStatus>;
  /** Polls the status until the cycle reaches a terminal stage (set after the change is closed and the report sent). */
  result(cycleId: string, timeoutMs?: number): Promise<CycleStatus>;
  /** Verifies the audit chain through the API. */
  verifyAudit(): Promise<{ ok: boolean; rows: number }>;
  /**
   * Stops the fleets, then SIGINTs the processes (SIGKILL after 20 s), stops the fakes and the dev server, drops the
   * database and removes the processes' data folder.
   */
  close(): Promise<void>;
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stopProcess(p: UpProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGINT');
  const killed = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
  await p.exited;
  clearTimeout(killed);
}

export async function startE2eProcessStack(name: string): Promise<E2eProcessStack> {
  const stops: Array<() => Promise<unknown>> = [];
  const closeAll = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    const db = await createTestDatabase({ migrate: false });
    stops.push(() => db.close());
    const temporal = await startDevServer({
      cliPath: inject('temporalCliPath'),
      port: await freePort(),
      startTimeoutMs: 120_000,
    });
    stops.push(() => temporal.stop());
    const slack = await startFakeSlackApi();
    stops.push(() => slack.close());
    const connector = await startFakeBotConnector();
    stops.push(() => connector.close());
    const serviceNow = new ServiceNowFake({ users: [{ username: 'patchops', password: 'patchops-password' }] });
    const instanceUrl = await serviceNow.start();
    stops.push(() => serviceNow.stop());
    const smtp = new SmtpSink();
    const smtpUrl = await smtp.start();
    stops.push(() => smtp.stop());

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const enrollSecret = `${name}-enrol-secret-0123456789`;
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), `patchops-${name}-`));
    stops.push(() => fs.rm(dataDir, { recursive: true, force: true }));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      // info: a process that never gets ready shows in the failure how far it got.
      LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'info',
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_CLI: inject('temporalCliPath'),
      SECRETS_KEY: randomBytes(32).toString('hex'),
      AGENT_ENROLL_SECRET: enrollSecret,
      PATCHOPS_ADMIN_PASSWORD: ADMIN_PASSWORD,
      PATCHOPS_DATA_DIR: dataDir,
      PORT: String(port),
      PUBLIC_URL: 'http://patchops.example.test',
      SLACK_BOT_TOKEN: 'xoxb-e2e',
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.url,
      SLACK_DEFAULT_CHANNEL: SLACK_CHANNEL,
      TEAMS_EMULATOR: 'true',
      TEAMS_SERVICE_URLS: connector.serviceUrl,
      SERVICENOW_INSTANCE_URL: instanceUrl,
      SERVICENOW_USERNAME: 'patchops',
      SERVICENOW_PASSWORD: 'patchops-password',
      SERVICENOW_WEBHOOK_SECRET: WEBHOOK_SECRET,
      SMTP_URL: smtpUrl,
      SMTP_FROM: 'patchops@example.test',
      REPORT_RECIPIENTS: REPORT_RECIPIENT,
    };
    // Both at once against a database nobody has migrated yet: they take turns on the migrations.
    const started = await Promise.allSettled([
      startPatchopsUp(env, 'server', 240_000),
      startPatchopsUp(env, 'worker', 240_000),
    ]);
    for (const s of started) if (s.status === 'fulfilled') stops.push(() => stopProcess(s.value));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [server, worker] = started.map((s) => (s as PromiseFulfilledResult<UpProcess>).value) as [
      UpProcess,
      UpProcess,
    ];
    serviceNow.webhook = { url: `${url}/webhooks/servicenow`, secret: WEBHOOK_SECRET };

    // The first admin (PATCHOPS_ADMIN_PASSWORD) signs in for a token, as `patchops login` does.
    const login = await fetch(`${url}/api/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'admin', password: ADMIN_PASSWORD, scope: 'admin', name: 'e2e' }),
    });
    if (login.status !== 200) throw new Error(`POST /api/v1/login answered ${login.status}: ${await login.text()}`);
    const { token } = (await login.json()) as { token: string };

    const fleets: SimProcess[] = [];
    // Before the processes stop (stops run in reverse): each fleet exits when its standard input ends.
    stops.push(async () => {
      const codes = await Promise.all(fleets.map((f) => f.stop()));
      if (codes.some((c) => c !== 0)) throw new Error(`agent-sim processes exited ${codes.join(', ')}`);
    });

    const api: E2eProcessStack['api'] = async (method, route, body) => {
      const res = await fetch(`${url}/api/v1${route}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`${method} /api/v1${route} answered ${res.status}: ${text}`);
      return JSON.parse(text) as never;
    };
    const status = async (cycleId: string) => {
      const reply = await api<{ data: { status: CycleStatus | null } }>(
        'GET',
        `/cycles/${encodeURIComponent(cycleId)}`,
      );
      if (!reply.data.status) throw new Error(`no status for ${cycleId}`);
      return reply.data.status;
    };

    return {
      db,
      temporal,
      server,
      worker,
      slack,
      connector,
      serviceNow,
      smtp,
      url,
      api,
      async grant(identity, role, group) {
        await api('POST', '/roles', { identity, role, ...(group ? { group } : {}) });
      },
      async savePolicy(doc) {
        await api('POST', '/policies', doc);
      },
      async fleet(o) {
        const fleet = await startSimProcess({
          serverUrl: url,
          enrollSecret,
          count: o.count,
          prefix: o.prefix,
          waitSeconds: 2,
          latencyMs: [10, 50],
          failureRate: 0,
          osMix: [1, 0, 0],
          patches: o.patches,
          ...(o.failingMachines ? { failingMachines: o.failingMachines } : {}),
          logLevel: process.env.E2E_LOG_LEVEL ?? 'warn',
        });
        fleets.push(fleet);
        await fleet.ready;
        if (fleet.machines.size !== o.count)
          throw new Error(`${fleet.machines.size} of ${o.count} simulated endpoints enrolled`);
        for (const m of fleet.machines.values()) serviceNow.seedCi(m.hostname);
        // The server queues a scan for every new endpoint: each answers it with what it misses.
        await waitFor(
          `the first scans of ${o.prefix}`,
          () => ((fleet.results.get('scan') ?? 0) >= o.count ? true : undefined),
          60_000,
        );
        return fleet;
      },
      async seedGroups(groups) {
        for (const g of groups) {
          await api('PUT', `/groups/${encodeURIComponent(g.name)}`, {
            isTestGroup: g.test ?? false,
            members: g.machines.map((m) => m.endpointId),
            ...(g.window ? { window: g.window } : {}),
          });
        }
      },
      async seedWindow(w) {
        const saved = await api<{ id: number }>('PUT', `/windows/${encodeURIComponent(w.name)}`, {
          rrule: w.rrule,
          timezone: 'UTC',
          durationMinutes: w.durationMinutes,
          blackoutDates: w.blackoutDates ?? [],
        });
        for (const group of w.groups) await api('PUT', `/groups/${encodeURIComponent(group)}`, { window: w.name });
        return saved.id;
      },
      async installJobs(cycleId) {
        const r = await db.db.execute<{ endpoint_id: string; not_before: string | null; created_at: string }>(
          sql`select endpoint_id, not_before, created_at from agent_jobs where cycle_id = ${cycleId} and kind = 'install' order by endpoint_id`,
        );
        return r.rows.map((x) => ({
          endpointId: x.endpoint_id,
          notBefore: x.not_before ? new Date(x.not_before) : null,
          createdAt: new Date(x.created_at),
        }));
      },
      async installTeams() {
        const res = await fetch(`${url}/api/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(
            installationUpdateActivity({
              id: 'install-1',
              serviceUrl: connector.serviceUrl,
              conversationId: TEAMS_CONVERSATION,
              tenantId: 't1',
              fromId: '29:admin',
            }),
          ),
        });
        if (res.status !== 200) throw new Error(`Teams installationUpdate answered ${res.status}`);
      },
      slackRequest: (body) =>
        fetch(`${url}/slack/events`, { method: 'POST', headers: signedHeaders(SIGNING_SECRET, body), body }),
      async teamsAction(o) {
        const res = await fetch(`${url}/api/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            type: 'invoke',
            name: 'adaptiveCard/action',
            id: `invoke-${Date.now()}`,
            replyToId: o.replyToId,
            serviceUrl: connector.serviceUrl,
            channelId: 'msteams',
            from: { id: o.from, name: o.from },
            recipient: { id: '28:patchops-bot' },
            conversation: { id: TEAMS_CONVERSATION, conversationType: 'channel', tenantId: 't1' },
            value: { action: { type: 'Action.Execute', verb: o.verb, data: o.data }, trigger: 'manual' },
          }),
        });
        if (res.status !== 200) throw new Error(`Teams invoke answered ${res.status}`);
        return (await res.json()) as { statusCode: number; value: unknown };
      },
      async dashboard() {
        const client = new HttpClient(url);
        const signedIn = await client.login('admin', ADMIN_PASSWORD);
        if (signedIn.status !== 303 || signedIn.location !== '/')
          throw new Error(`dashboard sign-in failed: ${signedIn.status} ${signedIn.location}`);
        return client;
      },
      status,
      result: (cycleId, timeoutMs = 120_000) =>
        waitFor(
          `the end of ${cycleId}`,
          async () => {
            const s = await status(cycleId);
            return TERMINAL_STAGES.includes(s.stage) ? s : undefined;
          },
          timeoutMs,
        ),
      verifyAudit: () => api<{ ok: boolean; rows: number }>('POST', '/audit/verify'),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** 20261205T064100Z, as RRULE's DTSTART writes a UTC time. */
export function rruleStamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** One Windows security update every machine of a story reports missing (`kb`: a KB number of the story's own). */
export function windowsUpdate(kb: string, cves: string[] = ['CVE-2026-0001']): FoundPatch {
  return {
    patchId: kb,
    title: `Security update ${kb}`,
    vendor: 'Microsoft',
    product: 'Windows',
    type: 'security',
    vendorSeverity: 'Important',
    severitySource: 'msrc',
    cvss: 7.5,
    cves,
    rebootRequired: false,
    packages: [{ manager: 'windows-update', name: kb }],
  };
}
