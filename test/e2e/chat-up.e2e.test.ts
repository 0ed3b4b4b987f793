/**
 * The real `patchops up` process with Slack configured against the fake Slack Web API (SLACK_API_URL) and Teams
 * in emulator mode: signed and forged Slack requests, a /patch command round trip, a Teams install and a typed
 * command answered through the fake connector.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFakeBotConnector, type FakeBotConnector } from '../fakes/bot-connector';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { signedHeaders, slashCommandBody } from '../helpers/slack-sign';
import { embeddedUpEnv, startPatchopsUp } from '../helpers/up-process';

const SECRET = 'up-e2e-signing-secret';

let child: ChildProcess | undefined;
let output: () => string = () => '';
let slack: FakeSlackApi;
let connector: FakeBotConnector;
let base: string;

beforeAll(async () => {
  slack = await startFakeSlackApi();
  connector = await startFakeBotConnector();
  const { env, ports } = await embeddedUpEnv(
    {
      SLACK_BOT_TOKEN: 'xoxb-up-e2e',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: slack.url,
      SLACK_DEFAULT_CHANNEL: 'C0PATCHING',
      PATCHOPS_ADMINS: 'slack:UADMIN,teams:29:admin',
      TEAMS_EMULATOR: 'true',
    },
    'patchops-chat-up-',
  );
  base = `http://127.0.0.1:${ports.http}`;
  const up = await startPatchopsUp(env);
  child = up.child;
  output = up.output;
}, 150_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.on('exit', r));
    child.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await slack?.close();
  await connector?.close();
});

it('serves /slack/events (signed only) and /api/messages (emulator mode) from the real process', async () => {
  expect(output()).toMatch(/Slack: on \(HTTP at \/slack\/events, Web API http:\/\/127\.0\.0\.1/);
  expect(output()).toMatch(/emulator mode/);

  const forged = slashCommandBody({ userId: 'UADMIN', text: 'cycles', responseUrl: `${slack.responseUrlBase}f` });
  const refused = await fetch(`${base}/slack/events`, {
    method: 'POST',
    body: forged,
    headers: signedHeaders('not-the-secret', forged),
  });
  expect(refused.status).toBe(401);

  const body = slashCommandBody({ userId: 'UADMIN', text: 'frobnicate', responseUrl: `${slack.responseUrlBase}ok` });
  const res = await fetch(`${base}/slack/events`, { method: 'POST', body, headers: signedHeaders(SECRET, body) });
  expect(res.status).toBe(200);
  const [reply] = await slack.waitFor('response_url', 1, 15_000);
  expect(reply!.args.responseId).toBe('ok');
  expect(String(reply!.args.text)).toContain('unknown command "frobnicate"');

  const teams = (o: Record<string, unknown>) =>
    fetch(`${base}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        serviceUrl: connector.serviceUrl,
        channelId: 'msteams',
        from: { id: '29:admin' },
        recipient: { id: '28:patchops-bot' },
        conversation: { id: '19:ops@thread.tacv2', conversationType: 'channel', tenantId: 't1' },
        ...o,
      }),
    });
  expect((await teams({ type: 'installationUpdate', action: 'add', id: 'i1' })).status).toBe(200);
  expect((await teams({ type: 'message', id: 'm1', text: 'cycles' })).status).toBe(200);
  const replies = await connector.waitFor('reply', 2, 15_000);
  expect(String(replies[0]!.activity!.text)).toContain('patchops is installed here');
  expect(String(replies[1]!.activity!.text).length).toBeGreaterThan(0);
  expect(String(replies[1]!.activity!.text)).not.toMatch(/only admins/);
}, 60_000);
