/**
 * Slack over real HTTP: signed requests in Slack's shapes to the listening server, the fake Slack Web API
 * recording what the bot sends, a real database, and a recording CycleService.
 */
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db';
import {
  blockActionsBody,
  eventCallbackBody,
  signedHeaders,
  slashCommandBody,
  viewSubmissionBody,
} from '../../../test/helpers/slack-sign';
import { startFakeSlackApi, type FakeSlackApi } from '../../../test/fakes/slack-api';
import { RecordingCycleService } from '../../../test/fakes/recording-cycle-service';
import { grantRole } from '../../db/identities';
import { endpointGroups, endpointPatches, endpoints, groupMembers, patches } from '../../db/schema/index';
import type { ApprovalRequest } from '../../domain/ports';
import { createSlackWebClient, SlackChatChannel } from './channel';
import { createLogger } from '../../logging';
import { buildServer } from '../../server/app';
import { ACTION } from '../core/card';
import type { CommandCaller } from '../../commands/runner-types';
import { DecisionDesk } from '../core/decisions';
import { createCommandRunner } from '../../commands/runner';
import { createSlackBot, REJECT_MODAL } from './app';

const SECRET = 'test-signing-secret-0123456789';
const REQUESTER = 'slack:UREQUESTER';
const logger = createLogger('silent');

let db: TestDatabase;
let fake: FakeSlackApi;
let server: FastifyInstance;
let url: string;
let service: RecordingCycleService;
let channel: SlackChatChannel;
const commands: Array<{ text: string; caller: CommandCaller }> = [];

function approvalRequest(cycleId: string): ApprovalRequest {
  return {
    cycleId,
    policyName: 'monthly-servers',
    emergency: false,
    requestedBy: REQUESTER,
    scope: { groups: ['web'] },
    endpoints: 12,
    bySeverity: { critical: 2, low: 1 },
    byType: { security: 3 },
    topPatches: [
      {
        patchId: 'KB1',
        title: 'Cumulative update',
        severity: 'critical',
        type: 'security',
        cvss: 9.8,
        cves: ['CVE-2026-0001'],
        knownExploited: true,
        endpoints: 12,
      },
    ],
    test: { index: 0, name: 'Test ring', state: 'done', total: 2, succeeded: 2, failed: 0, unreachable: 0, pending: 0 },
    changeNumber: 'CHG0001234',
    changeUrl: 'https://acme.service-now.com/change_request.do?sysparm_query=number=CHG0001234',
    deadline: '2026-11-28T10:00:00.000Z',
    approvalsNeeded: 1,
    channel: 'C0PATCHING',
  };
}

async function post(body: string, headers: Record<string, string>) {
  const t0 = performance.now();
  const res = await fetch(`${url}/slack/events`, { method: 'POST', body, headers });
  return { status: res.status, text: await res.text(), ms: performance.now() - t0 };
}
const signed = (body: string, o?: Parameters<typeof signedHeaders>[2]) => post(body, signedHeaders(SECRET, body, o));

async function auditRows(action: string) {
  const r = await db.db.execute<{ n: string }>(sql`select count(*)::text as n from audit_log where action = ${action}`);
  return Number(r.rows[0]!.n);
}

async function postApproval(cycleId: string) {
  await channel.requestApproval(approvalRequest(cycleId));
  expect(fake.callsTo('chat.postMessage').some((c) => JSON.stringify(c.args.blocks).includes(cycleId))).toBe(true);
  const stored = await db.db.execute<{ message_ref: string }>(
    sql`select message_ref from chat_messages where cycle_id = ${cycleId} and key = 'approval'`,
  );
  const [ch, messageTs] = stored.rows[0]!.message_ref.split(':');
  return { channelId: ch!, ts: messageTs! };
}

beforeAll(async () => {
  db = await createTestDatabase();
  fake = await startFakeSlackApi();
  service = new RecordingCycleService();
  const client = createSlackWebClient('xoxb-test-token', fake.url);
  channel = new SlackChatChannel({ client, db: db.db, logger, defaultChannel: 'C0PATCHING' });
  const desk = new DecisionDesk({ service, db: db.db, logger, chat: channel });
  const runner = createCommandRunner({ service, db: db.db, logger });
  const bot = createSlackBot({
    botToken: 'xoxb-test-token',
    signingSecret: SECRET,
    apiUrl: fake.url,
    db: db.db,
    service,
    desk,
    channel,
    logger,
    runCommand: async (text, caller) => {
      commands.push({ text, caller });
      return runner(text, caller);
    },
  });
  server = await buildServer({ logger, health: [], routes: [bot.routes!] });
  await server.listen({ host: '127.0.0.1', port: 0 });
  const addr = server.server.address() as { port: number };
  url = `http://127.0.0.1:${addr.port}`;
  await grantRole(db.db, { identity: 'slack:UADMIN', role: 'admin', by: 'test' });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await fake?.close();
  await db?.close();
});

beforeEach(() => {
  fake.reset();
  service.calls.length = 0;
});

describe('Slack approval message', () => {
  it('is posted once per (cycle, channel) with the cycle, CVEs, test ring, change and buttons; asking again updates it', async () => {
    service.addCycle('cyc-post', { requestedBy: REQUESTER });
    await channel.requestApproval(approvalRequest('cyc-post'));
    await channel.requestApproval(approvalRequest('cyc-post'));
    expect(fake.callsTo('chat.postMessage')).toHaveLength(1);
    expect(fake.callsTo('chat.update')).toHaveLength(1);
    const blocks = JSON.stringify(fake.callsTo('chat.postMessage')[0]!.args.blocks);
    for (const s of [
      'cyc-post',
      'monthly-servers',
      'CVE-2026-0001',
      'known exploited',
      'Test ring: 2/2 succeeded',
      'CHG0001234',
      ACTION.approve,
      ACTION.reject,
      '"style":"primary"',
      '"style":"danger"',
    ]) {
      expect(blocks).toContain(s);
    }
    await channel.requestApproval({
      ...approvalRequest('cyc-post'),
      notice: 'reminder',
      approvers: ['slack:UAPP1', 'cli:ops'],
    });
    const reminder = fake.callsTo('chat.postMessage')[1]!;
    expect(reminder.args.thread_ts).toBe(fake.callsTo('chat.update')[0]!.args.ts);
    expect(String(reminder.args.text)).toContain('Reminder');
    expect(String(reminder.args.text)).toContain('<@UAPP1>');
  });
});

describe('Approve click', () => {
  it('acks fast, calls the Update as the Slack user, tells the clicker ephemerally and updates the message in place', async () => {
    service.addCycle('cyc-a', { requestedBy: REQUESTER });
    const { channelId, ts } = await postApproval('cyc-a');
    const res = await signed(
      blockActionsBody({ userId: 'UAPPROVER', actionId: ACTION.approve, value: 'cyc-a', channelId, messageTs: ts }),
    );
    expect(res.status).toBe(200);
    const [eph] = await fake.waitFor('chat.postEphemeral');
    expect(eph!.args).toMatchObject({ channel: channelId, user: 'UAPPROVER' });
    expect(String(eph!.args.text)).toContain('You approved cycle cyc-a');
    const approve = service.callsOf('approve');
    expect(approve).toHaveLength(1);
    expect(approve[0]!.args).toEqual([
      'cyc-a',
      { identity: 'slack:UAPPROVER', channel: 'slack', reason: undefined, messageRef: `${channelId}:${ts}` },
    ]);
    const [update] = await fake.waitFor('chat.update');
    expect(update!.args).toMatchObject({ channel: channelId, ts });
    const blocks = JSON.stringify(update!.args.blocks);
    expect(blocks).toContain('Approved by <@UAPPROVER>');
    expect(blocks).not.toContain(ACTION.approve);
    expect(await auditRows('chat.approved')).toBeGreaterThanOrEqual(1);
  });

  it("shows the validator's refusal to the requester, and changes nothing", async () => {
    service.addCycle('cyc-self', { requestedBy: REQUESTER });
    const { channelId, ts } = await postApproval('cyc-self');
    fake.reset();
    await signed(
      blockActionsBody({ userId: 'UREQUESTER', actionId: ACTION.approve, value: 'cyc-self', channelId, messageTs: ts }),
    );
    const [eph] = await fake.waitFor('chat.postEphemeral');
    expect(String(eph!.args.text)).toContain('you requested this cycle; someone else must approve');
    expect(fake.callsTo('chat.update')).toHaveLength(0);
    expect(service.cycles.get('cyc-self')!.votes).toHaveLength(0);
  });

  it('counts a Slack retry and a double click once', async () => {
    service.addCycle('cyc-dup', { requestedBy: REQUESTER, needed: 2 });
    service.delayMs = 150;
    try {
      const { channelId, ts } = await postApproval('cyc-dup');
      fake.reset();
      const body = blockActionsBody({
        userId: 'UDOUBLE',
        actionId: ACTION.approve,
        value: 'cyc-dup',
        channelId,
        messageTs: ts,
        actionTs: '1764237600.000100',
      });
      const second = blockActionsBody({
        userId: 'UDOUBLE',
        actionId: ACTION.approve,
        value: 'cyc-dup',
        channelId,
        messageTs: ts,
        actionTs: '1764237600.000900',
      });
      const results = await Promise.all([signed(body), signed(body, { retryNum: 1 }), signed(second)]);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
      await fake.waitFor('chat.postEphemeral', 2);
      await new Promise((r) => setTimeout(r, 300));
      expect(service.callsOf('approve')).toHaveLength(1);
      expect(service.cycles.get('cyc-dup')!.votes).toHaveLength(1);
      // and a later click by the same person is answered from what was recorded
      await signed(
        blockActionsBody({ userId: 'UDOUBLE', actionId: ACTION.approve, value: 'cyc-dup', channelId, messageTs: ts }),
      );
      await fake.waitFor('chat.postEphemeral', 3);
      expect(service.callsOf('approve')).toHaveLength(1);
      expect(String(fake.callsTo('chat.postEphemeral').at(-1)!.args.text)).toContain('counts once');
    } finally {
      service.delayMs = 0;
    }
  });
});

describe('Signature verification', () => {
  it.each([
    [
      'a forged signature',
      (body: string) => ({
        ...signedHeaders(SECRET, body),
        'x-slack-signature': signedHeaders('wrong-secret', body)['x-slack-signature']!,
      }),
    ],
    [
      'a stale timestamp',
      (body: string) => signedHeaders(SECRET, body, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 }),
    ],
    [
      'no signature',
      (_body: string) => ({
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': String(Math.floor(Date.now() / 1000)),
      }),
    ],
    ['a body changed after signing', (body: string) => signedHeaders(SECRET, body.replace('cyc-forged', 'cyc-other'))],
  ])('refuses %s with 401 and no state change', async (_name, headers) => {
    service.addCycle('cyc-forged', { requestedBy: REQUESTER });
    const body = blockActionsBody({
      userId: 'UEVIL',
      actionId: ACTION.approve,
      value: 'cyc-forged',
      channelId: 'C0PATCHING',
      messageTs: '1.2',
    });
    const res = await post(body, headers(body));
    expect(res.status).toBe(401);
    await new Promise((r) => setTimeout(r, 100));
    expect(service.calls).toHaveLength(0);
    expect(fake.calls).toHaveLength(0);
    expect(service.cycles.get('cyc-forged')!.votes).toHaveLength(0);
  });
});

describe('Reject', () => {
  it('opens a modal requiring a reason; an empty reason is refused in the modal; a reason rejects the cycle', async () => {
    service.addCycle('cyc-r', { requestedBy: REQUESTER });
    const { channelId, ts } = await postApproval('cyc-r');
    fake.reset();
    await signed(
      blockActionsBody({ userId: 'UREJECTER', actionId: ACTION.reject, value: 'cyc-r', channelId, messageTs: ts }),
    );
    const [open] = await fake.waitFor('views.open');
    const view = open!.args.view as {
      callback_id: string;
      private_metadata: string;
      blocks: Array<{ type: string; block_id?: string }>;
    };
    expect(view.callback_id).toBe(REJECT_MODAL);
    expect(view.blocks.some((b) => b.type === 'input' && b.block_id === 'reason')).toBe(true);
    expect(service.calls).toHaveLength(0);

    const empty = await signed(
      viewSubmissionBody({
        userId: 'UREJECTER',
        callbackId: REJECT_MODAL,
        privateMetadata: view.private_metadata,
        reason: ' ',
      }),
    );
    expect(empty.status).toBe(200);
    expect(JSON.parse(empty.text)).toMatchObject({ response_action: 'errors', errors: { reason: expect.any(String) } });
    expect(service.calls).toHaveLength(0);

    const ok = await signed(
      viewSubmissionBody({
        userId: 'UREJECTER',
        callbackId: REJECT_MODAL,
        privateMetadata: view.private_metadata,
        reason: 'breaks the payroll app',
      }),
    );
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('');
    const [eph] = await fake.waitFor('chat.postEphemeral');
    expect(String(eph!.args.text)).toContain('You rejected cycle cyc-r');
    expect(service.callsOf('reject')[0]!.args[1]).toMatchObject({
      identity: 'slack:UREJECTER',
      reason: 'breaks the payroll app',
    });
    const [update] = await fake.waitFor('chat.update');
    expect(JSON.stringify(update!.args.blocks)).toContain('Rejected by <@UREJECTER>');
    expect(JSON.stringify(update!.args.blocks)).toContain('breaks the payroll app');
  });
});

describe('Thread: stages and pause questions', () => {
  it('posts stages in the approval thread once, and Resume is for admins only', async () => {
    service.addCycle('cyc-t', { requestedBy: REQUESTER });
    const { channelId, ts } = await postApproval('cyc-t');
    fake.reset();
    const update = { cycleId: 'cyc-t', stage: 'DEPLOYING' as const, text: 'Wave 1 of 2 done: 10 ok, 0 failed' };
    await channel.stageUpdate(update);
    await channel.stageUpdate(update);
    expect(fake.callsTo('chat.postMessage')).toHaveLength(1);
    expect(fake.callsTo('chat.postMessage')[0]!.args).toMatchObject({ channel: channelId, thread_ts: ts });

    await channel.pauseQuestion({
      cycleId: 'cyc-t',
      reason: 'failure threshold reached',
      wave: {
        index: 2,
        name: 'Wave 2',
        state: 'paused',
        total: 10,
        succeeded: 6,
        failed: 4,
        unreachable: 0,
        pending: 0,
      },
    });
    const pause = fake.callsTo('chat.postMessage')[1]!;
    expect(JSON.stringify(pause.args.blocks)).toContain(ACTION.resume);
    const pauseRef = await db.db.execute<{ message_ref: string }>(
      sql`select message_ref from chat_messages where cycle_id = 'cyc-t' and key like 'pause:%'`,
    );
    const pauseTs = pauseRef.rows[0]!.message_ref.split(':')[1]!;

    await signed(
      blockActionsBody({ userId: 'UNOBODY', actionId: ACTION.resume, value: 'cyc-t', channelId, messageTs: pauseTs }),
    );
    const [refused] = await fake.waitFor('chat.postEphemeral');
    expect(String(refused!.args.text)).toContain('only admins');
    expect(service.callsOf('resume')).toHaveLength(0);

    await signed(
      blockActionsBody({ userId: 'UADMIN', actionId: ACTION.resume, value: 'cyc-t', channelId, messageTs: pauseTs }),
    );
    await fake.waitFor('chat.postEphemeral', 2);
    expect(service.callsOf('resume')[0]!.args).toEqual(['cyc-t', 'slack:UADMIN']);
    const [resolved] = await fake.waitFor('chat.update');
    expect(resolved!.args).toMatchObject({ ts: pauseTs });
    expect(JSON.stringify(resolved!.args.blocks)).toContain('Resumed by <@UADMIN>');
  });
});

describe('/patch and App Home', () => {
  it.each([
    ['status of a cycle', 'UADMIN', 'status cyc-cmd', 'cyc-cmd — AWAIT_APPROVAL'],
    ['help', 'UNOBODY', 'help', 'status'],
    ['an unknown word: usage, no stack trace', 'UADMIN', 'frobnicate now', 'unknown command "frobnicate"'],
    ['an admin verb from a non-admin', 'UNOBODY', 'pause cyc-cmd', 'only admins may use "pause"'],
  ])('/patch %s round trip through the grammar and the executor', async (_name, user, text, expected) => {
    service.addCycle('cyc-cmd', { requestedBy: REQUESTER });
    const n = fake.callsTo('response_url').length;
    const res = await signed(slashCommandBody({ userId: user, text, responseUrl: `${fake.responseUrlBase}r1` }));
    expect(res.status).toBe(200);
    const replies = await fake.waitFor('response_url', n + 1);
    expect(replies.at(-1)!.args).toMatchObject({ response_type: 'ephemeral' });
    expect(String(replies.at(-1)!.args.text)).toContain(expected);
    expect(String(replies.at(-1)!.args.text)).not.toMatch(/at .*\.ts:\d+/);
    expect(commands.at(-1)).toMatchObject({ text, caller: { identity: `slack:${user}`, channel: 'slack' } });
    expect(service.callsOf('pause')).toHaveLength(0);
  });

  it('/patch pause from an admin signals the cycle as that admin', async () => {
    service.addCycle('cyc-cmd2', { requestedBy: REQUESTER });
    await signed(
      slashCommandBody({ userId: 'UADMIN', text: 'pause cyc-cmd2', responseUrl: `${fake.responseUrlBase}r2` }),
    );
    await fake.waitFor('response_url');
    expect(service.callsOf('pause')[0]!.args.slice(0, 2)).toEqual(['cyc-cmd2', 'slack:UADMIN']);
  });

  it('publishes the App Home with patch health; a retried event is processed once', async () => {
    service.addCycle('cyc-home', { requestedBy: REQUESTER });
    await grantRole(db.db, { identity: 'slack:UHOME', role: 'approver', by: 'test' });
    const body = eventCallbackBody(
      { type: 'app_home_opened', user: 'UHOME', channel: 'D0HOME', tab: 'home', event_ts: '1.1' },
      'Ev0HOME1',
    );
    const res = await signed(body, { contentType: 'application/json' });
    expect(res.status).toBe(200);
    const retry = await signed(body, { contentType: 'application/json', retryNum: 1 });
    expect(retry.status).toBe(200);
    const [publish] = await fake.waitFor('views.publish');
    await new Promise((r) => setTimeout(r, 200));
    expect(fake.callsTo('views.publish')).toHaveLength(1);
    expect(publish!.args.user_id).toBe('UHOME');
    const view = JSON.stringify(publish!.args.view);
    expect(view).toContain('Patch health');
    expect(view).toContain('Waiting for your approval');
    expect(view).toContain('cyc-home');
  });

  it('answers the url_verification challenge', async () => {
    const body = JSON.stringify({ token: 't', challenge: 'abc123', type: 'url_verification' });
    const res = await signed(body, { contentType: 'application/json' });
    expect(JSON.parse(res.text)).toEqual({ challenge: 'abc123' });
  });
});

describe('/patch reads need the viewer role (signed requests through the real Slack path)', () => {
  let seq = 0;
  /** Sends `/patch <text>` as `user`, signed as Slack signs it; returns the reply posted to the response_url. */
  async function slash(user: string, text: string) {
    const n = fake.callsTo('response_url').length;
    const res = await signed(
      slashCommandBody({ userId: user, text, responseUrl: `${fake.responseUrlBase}read${++seq}` }),
    );
    expect(res.status).toBe(200);
    const replies = await fake.waitFor('response_url', n + 1);
    return replies.at(-1)!.args as { text: string; blocks?: unknown[]; response_type: string };
  }

  beforeAll(async () => {
    // Two web servers (one fully patched), one database server with a missing critical patch.
    const [web, dbs] = await db.db
      .insert(endpointGroups)
      .values([{ name: 'rd-web' }, { name: 'rd-db' }])
      .returning({ id: endpointGroups.id });
    await db.db.insert(endpoints).values([
      { id: 'rd-web-1', machineId: 'm-rd-web-1', hostname: 'rd-web-1', osFamily: 'linux', osName: 'Debian' },
      { id: 'rd-web-2', machineId: 'm-rd-web-2', hostname: 'rd-web-2', osFamily: 'linux', osName: 'Debian' },
      {
        id: 'rd-db-1',
        machineId: 'm-rd-db-1',
        hostname: 'rd-db-1',
        osFamily: 'windows',
        osName: 'Windows Server 2022',
      },
    ]);
    await db.db.insert(groupMembers).values([
      { groupId: web!.id, endpointId: 'rd-web-1' },
      { groupId: web!.id, endpointId: 'rd-web-2' },
      { groupId: dbs!.id, endpointId: 'rd-db-1' },
    ]);
    await db.db.insert(patches).values([
      {
        id: 'RD-KB1',
        title: 'Windows security update',
        vendor: 'Microsoft',
        type: 'security',
        severity: 'critical',
        osFamily: 'windows',
      },
      { id: 'RD-DSA1', title: 'openssl', vendor: 'Debian', type: 'security', severity: 'important', osFamily: 'linux' },
    ]);
    await db.db.insert(endpointPatches).values([
      { endpointId: 'rd-db-1', patchId: 'RD-KB1', state: 'missing', detectedAt: new Date() },
      { endpointId: 'rd-web-2', patchId: 'RD-DSA1', state: 'missing', detectedAt: new Date() },
      {
        endpointId: 'rd-web-1',
        patchId: 'RD-DSA1',
        state: 'installed',
        detectedAt: new Date(),
        installedAt: new Date(),
      },
    ]);
    await grantRole(db.db, { identity: 'slack:UVIEWER', role: 'viewer', by: 'test' });
  });

  it.each([
    ['status', 'status cyc-read'],
    ['report', 'report'],
    ['report', 'report group:rd-web'],
    ['endpoints', 'endpoints rd-'],
  ])('a Slack user with no role cannot read: /patch %s (%s)', async (verb, text) => {
    service.addCycle('cyc-read', { requestedBy: REQUESTER });
    const reply = await slash('UNOROLE', text);
    expect(reply.response_type).toBe('ephemeral');
    expect(reply.text).toBe(
      `you need the viewer role to use "${verb}"; ask an admin: roles grant slack:UNOROLE viewer`,
    );
    expect(JSON.stringify(reply.blocks)).toContain('you need the viewer role');
    for (const leak of ['AWAIT_APPROVAL', 'compliance', 'rd-web-1', 'rd-db-1'])
      expect(JSON.stringify(reply)).not.toContain(leak);
    expect(service.callsOf('status')).toHaveLength(0);
    expect(service.callsOf('list')).toHaveLength(0);
  });

  it('a viewer reads status (text and blocks from the typed result), the endpoints, and the report for the fleet and for a scope', async () => {
    service.addCycle('cyc-read', { requestedBy: REQUESTER });
    const status = await slash('UVIEWER', 'status cyc-read');
    expect(status.text).toContain('cyc-read — AWAIT_APPROVAL');
    expect(JSON.stringify(status.blocks)).toContain('*Requested by*');
    expect(service.callsOf('status')[0]!.args).toEqual(['cyc-read']);

    const found = await slash('UVIEWER', 'endpoints rd-web');
    expect(found.text.split('\n').map((l) => l.split('  ')[0])).toEqual(['rd-web-1', 'rd-web-2']);

    const scoped = await slash('UVIEWER', 'report group:rd-web');
    expect(scoped.text).toContain('compliance in group:rd-web: 50% (1 of 2 endpoints fully patched)');
    expect(scoped.text).toContain('outstanding patches by severity: 1 important');
    expect(scoped.text).not.toContain('critical');
    const windows = await slash('UVIEWER', 'report os:windows group:rd-db');
    expect(windows.text).toContain('compliance in group:rd-db os:windows: 0% (0 of 1 endpoints fully patched)');
    expect(windows.text).toContain('outstanding patches by severity: 1 critical');
    expect(JSON.stringify(windows.blocks)).toContain('Compliance in groups rd-db; OS windows: 0%');

    // A viewer reads; changing something is still for admins.
    const pause = await slash('UVIEWER', 'pause cyc-read');
    expect(pause.text).toContain('only admins may use "pause"');
    expect(service.callsOf('pause')).toHaveLength(0);
  });

  it('the App Home of someone without a role says what to ask for and shows no patch health', async () => {
    const body = eventCallbackBody(
      { type: 'app_home_opened', user: 'UNOROLE', channel: 'D0NOROLE', tab: 'home', event_ts: '2.1' },
      'Ev0NOROLE1',
    );
    expect((await signed(body, { contentType: 'application/json' })).status).toBe(200);
    const [publish] = await fake.waitFor('views.publish');
    const view = JSON.stringify(publish!.args.view);
    expect(view).toContain('You need the viewer role');
    expect(view).not.toContain('Compliance');
    expect(service.callsOf('list')).toHaveLength(0);
  });
});
