/**
 * The real `patchops up` process with Slack configured against the fake Slack Web API (SLACK_API_URL) and Teams
 * in emulator mode: signed and forged Slack requests, a /patch command round trip, a Teams install and a typed
 * command answered through the fake connector.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, inject } from 'vitest';
import { freePort } from '../../src/temporal/dev-server';
import { startFakeBotConnector, type FakeBotConnector } from '../fakes/bot-connector';
import { startFakeSlackApi, type FakeSlackApi } from '../fakes/slack-api';
import { signedHeaders, slashCommandBody } from '../helpers/slack-sign';

const root = path.resolve(import.meta.dirname, '..', '..');
const SECRET = 'up-e2e-signing-secret';

let child: ChildProcess | undefined;
let output = '';
let slack: FakeSlackApi;
let connector: FakeBotConnector;
let base: string;

beforeAll(async () => {
  slack = await startFakeSlackApi();
  connector = await startFakeBotConnector();
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-chat-up-'));
  const [port, temporalPort, uiPort, pgPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [path.join(root, 'bin', 'patchops.mjs'), 'up'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PATCHOPS_DATA_DIR: dataDir,
      PORT: String(port),
      TEMPORAL_DEV_PORT: String(temporalPort),
      TEMPORAL_UI_PORT: String(uiPort),
      PATCHOPS_EMBEDDED_PG_PORT: String(pgPort),
      TEMPORAL_CLI: inject('temporalCliPath'),
      LOG_LEVEL: 'warn',
      SLACK_BOT_TOKEN: 'xoxb-up-e2e',
      SLACK_SIGNING_SECRET: SECRET,
      SLACK_API_URL: slack.url,
      SLACK_DEFAULT_CHANNEL: 'C0PATCHING',
      PATCHOPS_ADMINS: 'slack:UADMIN,teams:29:admin',
    },
  });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const end = Date.now() + 120_000;
  while (!output.includes('patchops ready')) {
    if (child.exitCode !== null) throw new Error(`patchops up exited (${child.exitCode}):\n${output}`);
    if (Date.now() > end) throw new Error(`no ready line within 120 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
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
  expect(output).toMatch(/Slack: on \(HTTP at \/slack\/events, Web API http:\/\/127\.0\.0\.1/);
  expect(output).toMatch(/emulator mode/);

  const forged = slashCommandBody({ userId: 'UADMIN', text: 'cycles', responseUrl: `${slack.responseUrlBase}f` });
  const refused = await fetch(`${base}/slack/events`, { method: 'POST', body: forged, headers: signedHeaders('not-the-secret', forged) });
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
