/**
 * `patchops demo`: one whole patch cycle on embedded defaults with no account anywhere. A fresh data folder
 * and free ports (so `npm start`'s data and ports are never touched), the local fakes of the outside services
 * (Slack Web API, Bot Framework connector, ServiceNow, SMTP: test code, loaded only here, in explicit demo
 * mode), the real `up` stack, and a simulated fleet speaking the real agent protocol. The approvals go through
 * the real request paths: a Slack block_actions click signed with the signing secret exactly as Slack signs
 * (v0 HMAC over `v0:timestamp:body`), and a Teams Action.Execute invoke on /api/messages carrying a Bot Framework
 * JWT signed as the Bot Framework service signs one (RS256, issuer api.botframework.com, audience the app id,
 * `serviceurl` claim), by a local issuer whose OpenID metadata and keys the bot fetches and checks with
 * botbuilder's own code, as it does against login.botframework.com. The bot's replies carry an app token from
 * that issuer's client-credentials endpoint (MSAL takes only https authorities, so the demo hands the stack
 * botbuilder's credential factory pointed there: UpOptions.teamsAuth).
 */
import { installationUpdateActivity } from '../chat/teams/installation';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { and, eq, inArray, isNotNull } from 'drizzle-orm';
import { ACTION } from '../chat/core/card';
import { signedSlackHeaders } from '../chat/slack/signing';
import { loadConfig } from '../config/index';
import { addEnrollSecret } from '../db/agent-enroll-secrets';
import { saveGroup, saveWindow } from '../db/groups';
import { grantRole } from '../db/identities';
import { savePolicy } from '../db/policies';
import { chatMessages, endpoints } from '../db/schema/index';
import { CycleStage, TERMINAL_STAGES, workflowIdForCycle, type CycleStatus } from '../domain/cycle';
import { createLogger, type Logger } from '../logging';
import { freePort } from '../temporal/dev-server';
import { cycleServiceFor } from '../services/temporal-cycle-service';
import { cycleStatusQuery } from '../workflows/messages';
import { SimFleet } from '../agent-sim/fleet';
import { startDemoPage, textsOf } from './demo-page';
import { up, type Running } from './up';

export interface DemoOptions {
  /** Click the approvals itself (also when stdin is not a terminal). */
  auto: boolean;
  endpoints: number;
  /** Keep the data folder afterwards (it is removed by default). */
  keep: boolean;
  out: (line: string) => void;
  /** When true, progress rewrites one line (a terminal); otherwise one line per change. */
  tty: boolean;
  /** Asks the person to go on (interactive mode); resolves when they do. */
  waitForPerson?: (prompt: string) => Promise<void>;
  signal: AbortSignal;
  /** Environment the demo takes TEMPORAL_CLI, LOG_LEVEL, PATH and HOME from. */
  env?: NodeJS.ProcessEnv;
}

export interface DemoResult {
  ok: boolean;
  stage: CycleStage | 'NOT_STARTED';
  reason?: string;
  cycleId?: string;
}

const SLACK_CHANNEL = 'C0DEMOPATCH';
const SLACK_APPROVER = 'UDEMOAPPROVER';
const TEAMS_APPROVER = '29:demo-approver';
const TEAMS_CONVERSATION = '19:patching@thread.tacv2';
/** The demo's Teams app (an Entra ID app id in real use); the local issuer knows it and its generated password. */
const TEAMS_APP_ID = '00000000-0000-4000-8000-00000000d3e0';
const POLICY = 'demo';

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const stops: Array<() => Promise<void>> = [];
  const env = o.env ?? process.env;
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-demo-'));
  const step = (s: string) => o.out(`▸ ${s}`);
  let logger: Logger | undefined;
  let result: DemoResult = { ok: false, stage: 'NOT_STARTED' };
  // Checks still running when Ctrl-C came (a status query to Temporal). They end before the stack stops: a call that
  // outlives its connection is retried by the Temporal client on a closed channel, which throws from a timer.
  const inFlight = new Set<Promise<unknown>>();
  const until = (timeoutMs: number, what: string, done: () => Promise<boolean> | boolean) =>
    untilDone(o.signal, inFlight, timeoutMs, what, done);
  try {
    step(`data folder ${dataDir} (fresh; removed at the end${o.keep ? ' unless --keep' : ''})`);
    // The outside services' fakes: test code, loaded only in demo mode.
    const [
      { startFakeSlackApi },
      { startFakeBotConnector },
      { startFakeBotFrameworkIssuer },
      { ServiceNowFake },
      { SmtpSink },
    ] = await Promise.all([
      import('../../test/fakes/slack-api'),
      import('../../test/fakes/bot-connector'),
      import('../../test/fakes/bot-framework-issuer'),
      import('../../test/fakes/servicenow'),
      import('../../test/fakes/smtp-sink'),
    ]);
    const slack = await startFakeSlackApi();
    stops.push(() => slack.close());
    const connector = await startFakeBotConnector();
    stops.push(() => connector.close());
    const issuer = await startFakeBotFrameworkIssuer();
    stops.push(() => issuer.close());
    const teamsAppPassword = randomBytes(16).toString('hex');
    issuer.registerApp(TEAMS_APP_ID, teamsAppPassword);
    const teamsToken = () => issuer.channelToken({ appId: TEAMS_APP_ID, serviceUrl: connector.serviceUrl });
    const serviceNow = new ServiceNowFake({ users: [{ username: 'admin', password: 'admin' }] });
    const instanceUrl = await serviceNow.start();
    stops.push(() => serviceNow.stop());
    serviceNow.seedGroup('Patch Management');
    serviceNow.seedStandardTemplate('Monthly OS patching', { short_description: 'Monthly OS patching (pre-approved)' });
    const sink = new SmtpSink();
    const smtpUrl = await sink.start();
    stops.push(() => sink.stop());
    step(
      `local fakes: Slack Web API ${slack.url}, Teams connector ${connector.serviceUrl} and Bot Framework login ${issuer.url}, ServiceNow ${instanceUrl}, SMTP ${smtpUrl}`,
    );

    const signingSecret = randomBytes(16).toString('hex');
    const webhookSecret = randomBytes(16).toString('hex');
    const port = await freePort();
    const config = loadConfig(
      {
        PATH: env.PATH,
        HOME: env.HOME,
        ...(env.TEMPORAL_CLI ? { TEMPORAL_CLI: env.TEMPORAL_CLI } : {}),
        LOG_LEVEL: env.LOG_LEVEL ?? 'error',
        PATCHOPS_DEMO: 'true',
        PATCHOPS_DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        PORT: String(port),
        TEMPORAL_DEV_PORT: String(await freePort()),
        TEMPORAL_UI_PORT: String(await freePort()),
        PATCHOPS_EMBEDDED_PG_PORT: String(await freePort()),
        SLACK_BOT_TOKEN: 'xoxb-demo-0000',
        SLACK_SIGNING_SECRET: signingSecret,
        SLACK_API_URL: slack.url,
        SLACK_DEFAULT_CHANNEL: SLACK_CHANNEL,
        TEAMS_APP_ID: TEAMS_APP_ID,
        TEAMS_APP_PASSWORD: teamsAppPassword,
        TEAMS_SERVICE_URLS: connector.serviceUrl,
        SERVICENOW_INSTANCE_URL: instanceUrl,
        SERVICENOW_USERNAME: 'admin',
        SERVICENOW_PASSWORD: 'admin',
        SERVICENOW_WEBHOOK_SECRET: webhookSecret,
        SERVICENOW_ASSIGNMENT_GROUP: 'Patch Management',
        SERVICENOW_WAVE_TASKS: 'true',
        SMTP_URL: smtpUrl,
        REPORT_RECIPIENTS: 'change-managers@patchops.demo',
      },
      process.cwd(),
    );
    logger = createLogger(config.logLevel, 'patchops-demo');
    step('starting the stack: embedded database, Temporal dev server, worker, HTTP server');
    const running: Running = await up(config, logger, {
      worker: true,
      server: true,
      teamsAuth: {
        cloud: issuer.cloudSettings,
        credentialsFactory: issuer.credentialsFactory({ appId: TEAMS_APP_ID, appPassword: teamsAppPassword }),
      },
    });
    stops.push(() => running.stop());
    const url = running.serverUrl!;
    serviceNow.webhook = { url: `${url}/webhooks/servicenow`, secret: webhookSecret };
    const db = running.db.database.db;
    const clicks = approvalClicks({
      db,
      url,
      signingSecret,
      connectorUrl: connector.serviceUrl,
      teamsToken,
      cycleId: () => result.cycleId,
    });
    const page = await startDemoPage({
      cards: () => ({
        slack: textsOf(
          slack.callsTo('chat.postMessage').find((c) => JSON.stringify(c.args.blocks ?? '').includes(ACTION.approve))
            ?.args.blocks,
        ),
        teams: textsOf(
          connector.calls.find(
            (c) =>
              (c.op === 'send' || c.op === 'createConversation') &&
              JSON.stringify(c.activity ?? '').includes(ACTION.approve),
          )?.activity?.attachments,
        ),
      }),
      click: (platform) => clicks.click(platform),
      mails: () =>
        sink.messages.map((m) => ({
          to: m.envelopeTo,
          subject: m.parsed.subject ?? '',
          html: typeof m.parsed.html === 'string' ? m.parsed.html : undefined,
          text: m.parsed.text,
        })),
    });
    stops.push(() => page.close());
    o.out('');
    o.out(
      `  Dashboard    ${url}/${running.firstAdmin?.generatedPassword ? `  (user ${running.firstAdmin.username}, password ${running.firstAdmin.generatedPassword})` : ''}`,
    );
    if (running.temporal.uiUrl) o.out(`  Temporal UI  ${running.temporal.uiUrl}`);
    o.out(`  Demo page    ${page.url}/  (the approval cards; e-mail received at ${page.url}/mail)`);
    o.out('');

    // The Teams bot is installed in a channel: its conversation reference is kept for proactive cards.
    const install = await fetch(`${url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${teamsToken()}` },
      body: JSON.stringify(
        installationUpdateActivity({
          id: 'demo-install',
          serviceUrl: connector.serviceUrl,
          conversationId: TEAMS_CONVERSATION,
          tenantId: 'demo-tenant',
          fromId: '29:demo-admin',
        }),
      ),
    });
    if (install.status !== 200)
      throw new Error(`the Teams bot refused its installation (HTTP ${install.status}): ${await install.text()}`);

    // The simulated fleet enrols through the agent gateway and reports what is missing (real KEV CVEs).
    const { secret } = await addEnrollSecret(db, { name: 'demo', by: 'cli:demo' });
    const fleetAbort = new AbortController();
    setMaxListeners(0, fleetAbort.signal); // one sleep per simulated endpoint listens to it
    const onAbort = () => fleetAbort.abort();
    o.signal.addEventListener('abort', onAbort);
    const fleet = new SimFleet({
      serverUrl: url,
      enrollSecret: secret,
      count: o.endpoints,
      prefix: 'demo',
      waitSeconds: 2,
      installLatencyMs: [20, 200],
      failureRate: 0,
      osMix: { windows: 0.55, linux: 0.3, macos: 0.15 },
      log: logger.child({ component: 'agent-sim' }),
      signal: fleetAbort.signal,
    });
    step(`scan: enrolling ${o.endpoints} simulated endpoints (Windows, Linux, macOS)`);
    await fleet.enroll();
    const fleetRun = fleet.run();
    stops.push(async () => {
      fleetAbort.abort();
      o.signal.removeEventListener('abort', onAbort);
      await fleetRun;
    });
    await until(120_000, 'every endpoint to send its first scan', async () => {
      const scanned = await db.$count(endpoints, isNotNull(endpoints.lastScanAt));
      if (o.tty) process.stdout.write(`\r  scanned ${scanned}/${o.endpoints}`);
      return scanned >= o.endpoints;
    });
    if (o.tty) process.stdout.write('\n');
    const groups = await seedGroups(db);
    step(`groups: ${groups.map((g) => `${g.name} (${g.members})`).join(', ')}`);

    await savePolicy(
      db,
      {
        name: POLICY,
        description:
          'patchops demo: test ring, pilot and broad waves, a standard change, one approval each from Slack and Teams',
        test: { group: 'demo-test-ring', soakSeconds: 5, failureThreshold: { percent: 20, count: 0 } },
        waves: [
          { name: 'pilot', percent: 10 },
          { name: 'broad', percent: 90 },
        ],
        failureThreshold: { percent: 20, count: 0 },
        concurrency: 100,
        batchSize: 50,
        maintenance: { respectWindows: true, expectedInstallMinutes: 0 },
        jobs: { unreachableAfterSeconds: 120, pollIntervalSeconds: 1 },
        change: { type: 'standard', standardTemplate: 'Monthly OS patching', pollSeconds: 5 },
        approval: { approverGroups: ['ops'], quorum: { low: 2, moderate: 2, high: 2, critical: 2 } },
      },
      'cli:demo',
    );
    for (const identity of [`slack:${SLACK_APPROVER}`, `teams:${TEAMS_APPROVER}`])
      await grantRole(db, { identity, role: 'approver', groupName: 'ops', by: 'cli:demo' });

    const cycles = cycleServiceFor(running);
    const { cycleId } = await cycles.start({
      policyName: POLICY,
      scope: { groups: groups.map((g) => g.name) },
      requestedBy: 'cli:demo',
    });
    const handle = running.temporal.client.workflow.getHandle(workflowIdForCycle(cycleId));
    step(`cycle ${cycleId} started`);
    if (running.temporal.uiUrl)
      o.out(
        `  watch it: ${running.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${encodeURIComponent(workflowIdForCycle(cycleId))}`,
      );
    result = { ok: false, stage: CycleStage.IDENTIFY, cycleId };

    let approved = false;
    let scheduled = false;
    let last = '';
    let status: CycleStatus | undefined;
    await until(15 * 60_000, `cycle ${cycleId} to end`, async () => {
      status = (await handle.query(cycleStatusQuery)) as CycleStatus;
      const line = progressLine(status);
      if (line !== last) {
        if (o.tty && stageOf(line) === stageOf(last)) process.stdout.write(`\r\x1b[2K${line}`);
        else o.out(`${o.tty && last ? '\n' : ''}${line}`.replace(/\n$/, ''));
        last = line;
      }
      if (status.stage === CycleStage.AWAIT_APPROVAL && !approved) {
        approved = true;
        if (o.tty) process.stdout.write('\n');
        await clicks.ready();
        o.out(`  approval cards posted in Slack and Teams: ${page.url}/ shows them`);
        if (o.auto) {
          o.out(`  ${await clicks.click('slack')}`);
          o.out(`  ${await clicks.click('teams')}`);
        } else {
          o.out(`  → open ${page.url}/ and click Approve on both cards (the policy needs one approval from each)`);
        }
        last = '';
      }
      // The change manager schedules the change in ServiceNow; its business rule tells patchops by webhook.
      if (approved && !scheduled && status.changeNumber && status.approvals.received >= status.approvals.needed) {
        scheduled = true;
        const code = await serviceNow.schedule(status.changeNumber);
        if (o.tty) process.stdout.write('\n');
        o.out(
          `  ServiceNow: change ${status.changeNumber} scheduled by the change manager (webhook answered HTTP ${code ?? 'nothing'})`,
        );
        last = '';
      }
      return TERMINAL_STAGES.includes(status.stage);
    });
    if (o.tty) process.stdout.write('\n');
    const final = status!;
    result = {
      ok: final.stage === CycleStage.COMPLETED,
      stage: final.stage,
      cycleId,
      ...(final.stage === CycleStage.COMPLETED
        ? {}
        : { reason: final.outcome ?? final.reasons.at(-1) ?? `the cycle ended ${final.stage}` }),
    };

    // Where to see the outcome.
    await until(30_000, 'the e-mail report', () => sink.messages.length > 0).catch(() => undefined);
    const change = final.changeNumber ? serviceNow.change(final.changeNumber) : undefined;
    o.out('');
    o.out(`Cycle ${cycleId}: ${final.stage}${final.outcome ? ` (${final.outcome})` : ''}`);
    o.out(
      `  Endpoints ${final.endpoints}, patches ${final.patches}; waves: ${[final.test, ...final.waves]
        .filter(Boolean)
        .map((w) => `${w!.name} ${w!.state}`)
        .join(', ')}`,
    );
    if (change)
      o.out(
        `  ServiceNow change ${final.changeNumber}: state ${change.state}${change.close_code ? `, close code ${change.close_code}` : ''} (while the demo runs: ${instanceUrl}/api/now/table/change_request?sysparm_query=number=${final.changeNumber}, user admin, password admin)`,
      );
    for (const m of sink.messages) o.out(`  E-mail to ${m.envelopeTo.join(', ')}: "${m.parsed.subject ?? ''}"`);
    o.out(
      `  The e-mail as the SMTP server received it: ${page.url}/mail · the cycle and its change in the dashboard: ${url}/`,
    );
    const appTokens = new Set(issuer.grants.map((g) => `Bearer ${g.accessToken}`));
    const withAppToken = connector.calls.filter((c) => c.authorization && appTokens.has(c.authorization)).length;
    o.out(
      `  Slack: ${slack.calls.length} Web API calls; Teams: ${connector.calls.length} connector calls, ${withAppToken} with the bot's app token`,
    );
    if (!result.ok) o.out(`The demo cycle did not complete: ${result.reason}`);
    if (!o.auto && o.waitForPerson)
      await Promise.race([
        o.waitForPerson('Press Enter to stop the demo (everything it started stops) '),
        aborted(o.signal).catch(() => undefined),
      ]);
    return result;
  } catch (e) {
    if (o.signal.aborted) return { ...result, ok: false, reason: 'interrupted' };
    return { ...result, ok: false, reason: e instanceof Error ? e.message : String(e) };
  } finally {
    await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, 10_000).unref())]);
    for (const stop of stops.reverse())
      await stop().catch((err: unknown) => logger?.warn({ err }, 'demo: error while stopping'));
    if (!o.keep) await fs.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
    else o.out(`  data kept in ${dataDir}`);
  }
}

function stageOf(line: string): string {
  return line.split(' ')[0] ?? '';
}

/** One line of progress: the stage, then what matters in it. */
export function progressLine(s: CycleStatus): string {
  const parts = [s.stage.padEnd(15)];
  if (s.endpoints) parts.push(`${s.endpoints} endpoints, ${s.patches} patches`);
  if (Object.keys(s.bySeverity).length)
    parts.push(
      Object.entries(s.bySeverity)
        .map(([k, v]) => `${k} ${v}`)
        .join(' '),
    );
  if (s.changeNumber) parts.push(`${s.changeNumber}${s.changeState ? ` ${s.changeState}` : ''}`);
  if (s.stage === CycleStage.AWAIT_APPROVAL) parts.push(`approvals ${s.approvals.received}/${s.approvals.needed}`);
  const wave = [s.test, ...s.waves]
    .filter(Boolean)
    .map((w) => `${w!.name}: ${w!.state} ${w!.succeeded}/${w!.total}${w!.failed ? ` (${w!.failed} failed)` : ''}`);
  if (wave.length && s.stage !== CycleStage.ASSESS) parts.push(wave.join(' · '));
  return parts.join(' │ ');
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    const fail = () => reject(new Error('interrupted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

async function untilDone(
  signal: AbortSignal,
  inFlight: Set<Promise<unknown>>,
  timeoutMs: number,
  what: string,
  done: () => Promise<boolean> | boolean,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  const interrupted = aborted(signal);
  interrupted.catch(() => undefined);
  for (;;) {
    if (signal.aborted) throw new Error('interrupted');
    // A check in flight must not hold up noticing Ctrl-C; it is kept in `inFlight` so the stop can wait for it.
    const check = Promise.resolve(done());
    inFlight.add(check);
    void check.then(
      () => inFlight.delete(check),
      () => inFlight.delete(check),
    );
    if (await Promise.race([check, interrupted])) return;
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

type Db = Running['db']['database']['db'];

/** Who the demo's own set-up is in the audit log as. */
const DEMO_ACTOR = 'cli:demo';

/** Groups by OS, each in a maintenance window (daily, 24 h: always open, so the demo need not wait), and a test ring. */
async function seedGroups(db: Db): Promise<Array<{ name: string; members: number }>> {
  const all = await db
    .select({ id: endpoints.id, os: endpoints.osFamily })
    .from(endpoints)
    .where(inArray(endpoints.osFamily, ['windows', 'linux', 'macos']));
  // Through the same calls as PUT /api/v1/windows and /groups: validated and in the audit log.
  await saveWindow(
    db,
    {
      name: 'demo-daily',
      rrule: 'FREQ=DAILY;BYHOUR=0;BYMINUTE=0',
      timezone: 'UTC',
      durationMinutes: 24 * 60,
      blackoutDates: [],
    },
    DEMO_ACTOR,
  );
  const testRing = new Set<string>();
  for (const os of ['windows', 'linux', 'macos'])
    for (const e of all.filter((x) => x.os === os).slice(0, 3)) testRing.add(e.id);
  const spec = [
    { name: 'demo-test-ring', isTestGroup: true, members: all.filter((e) => testRing.has(e.id)) },
    {
      name: 'windows-workstations',
      isTestGroup: false,
      members: all.filter((e) => e.os === 'windows' && !testRing.has(e.id)),
    },
    { name: 'linux-servers', isTestGroup: false, members: all.filter((e) => e.os === 'linux' && !testRing.has(e.id)) },
    { name: 'macos-laptops', isTestGroup: false, members: all.filter((e) => e.os === 'macos' && !testRing.has(e.id)) },
  ].filter((g) => g.members.length > 0);
  for (const g of spec)
    await saveGroup(
      db,
      { name: g.name, isTestGroup: g.isTestGroup, window: 'demo-daily', members: g.members.map((m) => m.id) },
      DEMO_ACTOR,
    );
  return spec.map((g) => ({ name: g.name, members: g.members.length }));
}

/** Approve clicks in Slack and in Teams, sent to the server's real routes as those services would send them. */
function approvalClicks(o: {
  db: Db;
  url: string;
  signingSecret: string;
  connectorUrl: string;
  /** A Bot Framework channel token for the demo's Teams app (the local issuer's). */
  teamsToken: () => string;
  cycleId: () => string | undefined;
}) {
  const ref = async (platform: string) => {
    const cycleId = o.cycleId();
    for (let i = 0; cycleId && i < 100; i++) {
      const [row] = await o.db
        .select({ ref: chatMessages.messageRef, conversation: chatMessages.conversationId })
        .from(chatMessages)
        .where(
          and(
            eq(chatMessages.cycleId, cycleId),
            eq(chatMessages.platform, platform),
            eq(chatMessages.key, 'approval'),
            isNotNull(chatMessages.messageRef),
          ),
        );
      if (row?.ref) return { cycleId, ref: row.ref, conversation: row.conversation };
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`the ${platform} approval card of cycle ${cycleId ?? '(none yet)'} was never posted`);
  };
  const slack = async (): Promise<string> => {
    const m = await ref('slack');
    const ts = m.ref.split(':').at(-1)!;
    const payload = {
      type: 'block_actions',
      user: { id: SLACK_APPROVER, username: 'demo.approver', name: 'demo.approver', team_id: 'T0DEMO0001' },
      api_app_id: 'A0PATCHOPS',
      token: 'deprecated-verification-token',
      container: { type: 'message', message_ts: ts, channel_id: m.conversation, is_ephemeral: false },
      trigger_id: `${Date.now()}.demo`,
      team: { id: 'T0DEMO0001', domain: 'demo' },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: m.conversation, name: 'patching' },
      message: { type: 'message', ts, text: 'approval', user: 'U0BOT00001', bot_id: 'B0BOT00001' },
      state: { values: {} },
      response_url: `${o.url}/`,
      actions: [
        {
          action_id: ACTION.approve,
          block_id: 'patchops_approval',
          text: { type: 'plain_text', text: 'Approve', emoji: true },
          value: m.cycleId,
          type: 'button',
          action_ts: (Date.now() / 1000).toFixed(6),
        },
      ],
    };
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const click = await fetch(`${o.url}/slack/events`, {
      method: 'POST',
      headers: signedSlackHeaders(o.signingSecret, body),
      body,
    });
    if (click.status !== 200)
      throw new Error(`the signed Slack click was refused (HTTP ${click.status}): ${await click.text()}`);
    return `Slack: Approve clicked by ${SLACK_APPROVER} (signed request, HTTP ${click.status})`;
  };
  const teams = async (): Promise<string> => {
    const m = await ref('teams');
    const invoke = await fetch(`${o.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${o.teamsToken()}` },
      body: JSON.stringify({
        type: 'invoke',
        name: 'adaptiveCard/action',
        id: `demo-invoke-${Date.now()}`,
        replyToId: m.ref,
        serviceUrl: o.connectorUrl,
        channelId: 'msteams',
        from: { id: TEAMS_APPROVER, name: 'Demo Approver' },
        recipient: { id: `28:${TEAMS_APP_ID}`, name: 'patchops' },
        conversation: { id: m.conversation, conversationType: 'channel', tenantId: 'demo-tenant' },
        value: {
          action: { type: 'Action.Execute', verb: ACTION.approve, data: { cycleId: m.cycleId } },
          trigger: 'manual',
        },
      }),
    });
    if (invoke.status !== 200)
      throw new Error(`the Teams invoke was refused (HTTP ${invoke.status}): ${await invoke.text()}`);
    return `Teams: Approve clicked by ${TEAMS_APPROVER} (Action.Execute invoke with a signed Bot Framework token, HTTP ${invoke.status})`;
  };
  return {
    /** Resolves once both cards are posted (their message ids stored). */
    ready: async () => {
      await ref('slack');
      await ref('teams');
    },
    click: (platform: 'slack' | 'teams') => (platform === 'slack' ? slack() : teams()),
  };
}
