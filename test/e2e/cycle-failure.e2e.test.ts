/**
 * Issue #17 end to end: the real `patchops up` process (its own Temporal dev server, worker, HTTP server) on a
 * database of this test, with ServiceNow (the fake, refusing change creates the way an instance does for a user
 * without the role), Slack (the fake Web API) and SMTP (an in-process sink). A cycle started by a signed
 * `/patch start` ends FAILED with ServiceNow's words in `patchops status`, in the Slack thread, in the audit
 * log and in the e-mailed report.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { ServiceNowFake } from '../fakes/servicenow';
import { SmtpSink } from '../fakes/smtp-sink';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { saveTestPolicy, seedFleet } from '../helpers/cycle-fixtures';
import { loggedInCli, type Cli } from '../helpers/cli-session';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { signedHeaders, slashCommandBody } from '../helpers/slack-sign';
import { embeddedUpEnv, startPatchopsUp } from '../helpers/up-process';

const SECRET = 'cycle-failure-e2e-signing-secret';

let db: TestDatabase;
let child: ChildProcess | undefined;
let slack: FakeSlackApi;
const fake = new ServiceNowFake();
const sink = new SmtpSink();
let base: string;
/** The CLI logged in to the server as web:alice, an admin. */
let cli: Cli;
let temporalAddress: string;

/** `patchops status <id>` until the cycle's stage matches (or the time is up); returns the last text. */
async function statusUntil(cycleId: string, stage: RegExp, timeoutMs: number): Promise<string> {
  let status = '';
  for (const end = Date.now() + timeoutMs; Date.now() < end;) {
    status = (await cli(['status', cycleId])).stdout;
    if (stage.test(status)) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return status;
}

beforeAll(async () => {
  db = await createTestDatabase();
  slack = await startFakeSlackApi();
  const instanceUrl = await fake.start();
  const smtpUrl = await sink.start();
  const { env, ports } = await embeddedUpEnv(
    {
      DATABASE_URL: db.url,
      SLACK_BOT_TOKEN: 'xoxb-cycle-failure',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: slack.url,
      SLACK_DEFAULT_CHANNEL: 'C0PATCHING',
      PATCHOPS_ADMINS: 'slack:UADMIN',
      SERVICENOW_INSTANCE_URL: instanceUrl,
      SERVICENOW_CLIENT_ID: 'patchops',
      SERVICENOW_CLIENT_SECRET: 'secret',
      SMTP_URL: smtpUrl,
      REPORT_RECIPIENTS: 'cab@example.test',
    },
    'patchops-cycle-failure-',
  );
  base = `http://127.0.0.1:${ports.http}`;
  temporalAddress = `127.0.0.1:${ports.temporal}`;
  const up = await startPatchopsUp(env);
  child = up.child;
  cli = await loggedInCli(base, db.db, { username: 'alice', role: 'admin' });
}, 150_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.on('exit', r));
    child.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await slack?.close();
  await fake.stop();
  await sink.stop();
  await db?.close();
});

it('a cycle whose change request ServiceNow refuses ends FAILED with the reason in status, the Slack thread, audit and mail', async () => {
  const fleet = await seedFleet(db.db, { prefix: 'e2efail', testEndpoints: 0, endpoints: 2 });
  await saveTestPolicy(db.db, 'e2efail', fleet.testGroup, {
    autoApprove: { types: ['security'] },
    change: { type: 'normal', pollSeconds: 5 },
  });
  fake.inject({
    status: 403,
    error: { message: 'Operation Failed', detail: 'User lacks the itil role needed to create change requests' },
    pathPrefix: '/api/sn_chg_rest/change/normal',
  });

  const body = slashCommandBody({
    userId: 'UADMIN',
    text: `start e2efail group:${fleet.prodGroup}`,
    responseUrl: `${slack.responseUrlBase}start`,
  });
  expect(
    (await fetch(`${base}/slack/events`, { method: 'POST', body, headers: signedHeaders(SECRET, body) })).status,
  ).toBe(200);
  const [reply] = await slack.waitFor('response_url', 1, 15_000);
  const cycleId = /PC-\d{8}-[0-9a-f]{6}/.exec(String(reply!.args.text))?.[0];
  expect(cycleId, String(reply!.args.text)).toBeTruthy();

  const status = await statusUntil(cycleId!, / — (FAILED|COMPLETED|CANCELLED)/, 60_000);
  const why =
    /could not create the change request: ServiceNow POST \/api\/sn_chg_rest\/change\/normal returned 403: Operation Failed: User lacks the itil role needed to create change requests/;
  expect(status).toContain(`${cycleId} — FAILED`);
  expect(status).toMatch(new RegExp(`outcome: ${why.source}`));
  expect((await cli(['cycles'])).stdout).toMatch(new RegExp(`${cycleId}.*FAILED`));

  // The cycle's Slack thread is told, in the words of the failure.
  const said = () =>
    slack.calls.filter(
      (c) => (c.method === 'chat.postMessage' || c.method === 'chat.update') && why.test(JSON.stringify(c.args)),
    );
  for (const end = Date.now() + 15_000; said().length === 0 && Date.now() < end;)
    await new Promise((r) => setTimeout(r, 200));
  expect(said().length).toBeGreaterThan(0);

  const audit = await db.db.execute<{ actor: string; details: { text?: string } }>(
    sql`select actor, details from audit_log where subject_type = 'cycle' and subject_id = ${cycleId!} and action = 'cycle.stage.failed'`,
  );
  expect(audit.rows[0]?.details.text).toMatch(why);

  for (
    const end = Date.now() + 15_000;
    !sink.messages.some((m) => m.parsed.subject?.includes(cycleId!)) && Date.now() < end;
  )
    await new Promise((r) => setTimeout(r, 200));
  const mail = sink.messages.find((m) => m.parsed.subject?.includes(cycleId!));
  expect(mail?.parsed.subject).toMatch(/Cycle failed/);
  expect(mail?.parsed.text).toMatch(why);

  expect(fake.changes().filter((c) => c.correlation_id === cycleId)).toEqual([]);
}, 180_000);

it('a cycle terminated from Temporal is ended FAILED by the running worker: change cancelled with the reason, Slack told', async () => {
  const fleet = await seedFleet(db.db, { prefix: 'e2eterm', testEndpoints: 0, endpoints: 2 });
  // Needs a person's approval that nobody gives: the cycle waits, with its change raised.
  await saveTestPolicy(db.db, 'e2eterm', fleet.testGroup, {
    autoApprove: { types: ['definition'] },
    change: { type: 'normal', pollSeconds: 5 },
  });
  const started = await cli(['start', 'e2eterm', `group:${fleet.prodGroup}`]);
  const cycleId = /cycle (\S+) started/.exec(started.stdout)?.[1];
  expect(cycleId, started.stderr).toBeTruthy();
  const waiting = await statusUntil(cycleId!, / — AWAIT_APPROVAL/, 60_000);
  const changeNumber = /change (CHG\d+)/.exec(waiting)?.[1];
  expect(changeNumber, waiting).toBeTruthy();

  const term = spawnSync(
    inject('temporalCliPath'),
    [
      'workflow',
      'terminate',
      '--workflow-id',
      `patch-cycle:${cycleId}`,
      '--reason',
      'wrong scope, ended by the on-call',
      '--address',
      temporalAddress,
    ],
    { encoding: 'utf8' },
  );
  expect(term.status, term.stderr).toBe(0);

  // The worker's reconciler sweeps every 30 s.
  const status = await statusUntil(cycleId!, / — FAILED/, 75_000);
  expect(status).toContain(`${cycleId} — FAILED`);
  expect(status).toMatch(
    /outcome: the cycle's workflow was terminated in Temporal by .+: wrong scope, ended by the on-call/,
  );
  expect(status).toContain(`change ${changeNumber} (canceled)`);
  expect(fake.change(changeNumber!)).toMatchObject({ state: '4' });
  expect(fake.change(changeNumber!)!.close_notes).toMatch(/wrong scope, ended by the on-call/);
  for (const end = Date.now() + 15_000; Date.now() < end;) {
    if (slack.calls.some((c) => /wrong scope, ended by the on-call/.test(JSON.stringify(c.args)))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(slack.calls.some((c) => /wrong scope, ended by the on-call/.test(JSON.stringify(c.args)))).toBe(true);
}, 180_000);
