/**
 * The real `patchops up` process configured for a ServiceNow instance (the local fake) and an SMTP server
 * (in-process): health checks call both for real, the webhook is mounted with its secret and reaches the
 * cycle service, and the weekly digest schedule exists in Temporal.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it, inject } from 'vitest';
import { ServiceNowFake } from '../fakes/servicenow';
import { SmtpSink } from '../fakes/smtp-sink';
import { embeddedUpEnv, startPatchopsUp } from '../helpers/up-process';

describe('patchops up with ServiceNow and email', () => {
  const children: ChildProcess[] = [];
  const fake = new ServiceNowFake({ oauthClients: [{ clientId: 'patchops', clientSecret: 'oauth-secret' }] });
  const sink = new SmtpSink();
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await fake.stop();
    await sink.stop();
  });

  it('checks both services for real, mounts the webhook, and schedules the weekly digest', async () => {
    const instanceUrl = await fake.start();
    const smtpUrl = await sink.start();
    const secret = 'e2e-webhook-secret-0123456789';
    const { env, ports } = await embeddedUpEnv(
      {
        SERVICENOW_INSTANCE_URL: instanceUrl,
        SERVICENOW_CLIENT_ID: 'patchops',
        SERVICENOW_CLIENT_SECRET: 'oauth-secret',
        SERVICENOW_WEBHOOK_SECRET: secret,
        SMTP_URL: smtpUrl,
        REPORT_RECIPIENTS: 'cab@example.test',
      },
      'patchops-sn-',
    );
    const { http: port, temporal: temporalPort } = ports;
    const up = await startPatchopsUp(env);
    children.push(up.child);
    expect(up.output()).toMatch(/ServiceNow: on \(http:\/\/127\.0\.0\.1:\d+, oauth auth\)/);

    const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as {
      dependencies: Record<string, { status: string; detail: string }>;
    };
    expect(health.dependencies.servicenow).toEqual({ status: 'up', detail: `${instanceUrl}, oauth auth` });
    expect(health.dependencies.email).toMatchObject({ status: 'up' });
    expect(fake.tokenGrants).toContain('client_credentials');

    const hook = `http://127.0.0.1:${port}/webhooks/servicenow`;
    const body = JSON.stringify({
      number: 'CHG0099999',
      state: '-2',
      approval: 'approved',
      correlation_id: 'PC-nobody',
    });
    expect(
      (
        await fetch(hook, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-patchops-secret': 'wrong' },
          body,
        })
      ).status,
    ).toBe(401);
    const unknown = await fetch(hook, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-patchops-secret': secret },
      body,
    });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toBe(
      'ServiceNow has no change CHG0099999: the notification was ignored',
    ); // asked the instance itself

    const schedules = spawnSync(
      inject('temporalCliPath'),
      ['schedule', 'list', '--address', `127.0.0.1:${temporalPort}`],
      { encoding: 'utf8' },
    );
    expect(schedules.status, schedules.stderr).toBe(0);
    expect(schedules.stdout).toContain('patchops-compliance-digest');

    up.child.kill('SIGINT');
    expect((await up.exited).code).toBe(0);
  }, 240_000);
});
