import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('loadConfig', () => {
  it('gives sane embedded defaults for an empty environment', () => {
    const c = loadConfig({}, '/srv/patchops');
    expect(c.http).toEqual({ host: '127.0.0.1', port: 3000, publicUrl: 'http://127.0.0.1:3000', trustProxy: [] });
    expect(c.teams).toMatchObject({ enabled: false, mode: 'off' });
    expect(c.database.url).toBeUndefined();
    expect(c.temporal.address).toBeUndefined();
    expect(c.temporal.namespace).toBe('default');
    expect(c.dataDir).toBe('/srv/patchops/data');
    expect(c.slack.enabled).toBe(false);
    expect(c.serviceNow.enabled).toBe(false);
    expect(c.smtp.enabled).toBe(false);
    expect(c.audit).toEqual({ checkpointFile: '/srv/patchops/data/audit-checkpoint.json', checkpointMinutes: 15 });
    expect(c.repository).toEqual({ maxUploadBytes: 4096 * 1024 * 1024 });
    expect(loadConfig({ PATCHOPS_REPO_MAX_UPLOAD_MB: '2' }).repository.maxUploadBytes).toBe(2 * 1024 * 1024);
  });

  it.each([
    [{ PORT: 'eighty' }, /^PORT: expected a TCP port number from 0 to 65535, got "eighty"/],
    [{ PORT: '70000' }, /^PORT: expected a TCP port/],
    [{ DATABASE_URL: 'mysql://x@y/z' }, /^DATABASE_URL: expected a PostgreSQL URL/],
    [{ TEMPORAL_ADDRESS: 'http://temporal:7233' }, /^TEMPORAL_ADDRESS: expected host:port/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: expected one of fatal, error/],
    [{ SLACK_BOT_TOKEN: 'abc' }, /^SLACK_BOT_TOKEN: expected a Slack bot token starting with xoxb-/],
    [{ SLACK_BOT_TOKEN: 'xoxb-1' }, /^SLACK_SIGNING_SECRET is not set: Slack requests cannot be verified/],
    [{ SLACK_SIGNING_SECRET: 's' }, /^SLACK_BOT_TOKEN is not set/],
    [{ TEAMS_APP_ID: 'id' }, /^TEAMS_APP_ID and TEAMS_APP_PASSWORD go together/],
    [
      { TEAMS_APP_ID: 'id', TEAMS_APP_PASSWORD: 'pw', TEAMS_EMULATOR: 'true' },
      /^TEAMS_EMULATOR=true turns JWT validation off, but TEAMS_APP_ID is set/,
    ],
    [{ TEAMS_SERVICE_URLS: 'ftp://x.example' }, /^TEAMS_SERVICE_URLS: expected comma-separated http\(s\) URLs/],
    [{ TRUST_PROXY: 'everyone' }, /^TRUST_PROXY: expected comma-separated proxy addresses/],
    [{ TRUST_PROXY: '10.0.0.0/33' }, /^TRUST_PROXY: expected comma-separated proxy addresses/],
    [{ SERVICENOW_INSTANCE_URL: 'not a url' }, /^SERVICENOW_INSTANCE_URL: expected your instance URL/],
    [
      { SERVICENOW_INSTANCE_URL: 'https://acme.service-now.com' },
      /^SERVICENOW_INSTANCE_URL is set but no credentials are/,
    ],
    [
      { SERVICENOW_INSTANCE_URL: 'https://a.service-now.com', SERVICENOW_CLIENT_ID: 'x' },
      /^SERVICENOW_CLIENT_ID and SERVICENOW_CLIENT_SECRET go together/,
    ],
    [{ SMTP_URL: 'mail.example.com' }, /^SMTP_URL: expected smtp:\/\//],
    [
      { DATABASE_APP_URL: 'postgres://patchops_login:pw@db/patchops' },
      /^DATABASE_APP_URL needs DATABASE_URL \(the owner that runs migrations\)/,
    ],
    [
      { PATCHOPS_AUDIT_CHECKPOINT_MINUTES: 'often' },
      /^PATCHOPS_AUDIT_CHECKPOINT_MINUTES: expected whole minutes from 0/,
    ],
    [{ PATCHOPS_REPO_MAX_UPLOAD_MB: '0' }, /^PATCHOPS_REPO_MAX_UPLOAD_MB: expected whole megabytes from 1/],
    [{ PATCHOPS_REPO_MAX_UPLOAD_MB: '1.5' }, /^PATCHOPS_REPO_MAX_UPLOAD_MB: expected whole megabytes from 1/],
    [{ AGENT_ENROLL_SECRET: 'short' }, /^AGENT_ENROLL_SECRET: expected at least 16 characters/],
    [{ SECRETS_KEY: 'dG9vIHNob3J0' }, /^SECRETS_KEY: expected 32 bytes as base64 or hex/],
    [{ PATCHOPS_ADMINS: 'slack:U1,bob' }, /^PATCHOPS_ADMINS: .*"bob" has no known prefix/],
    [{ PATCHOPS_DEMO: 'maybe' }, /^PATCHOPS_DEMO: expected true or false, got "maybe"/],
    [{ TEMPORAL_API_KEY: 'k' }, /need TEMPORAL_ADDRESS/],
    [
      { TEMPORAL_ADDRESS: 't:7233', TEMPORAL_TLS_CERT: '/c.pem' },
      /^TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together/,
    ],
  ])('refuses %o with a message naming the variable', (env, message) => {
    const problems = problemsOf(env as Record<string, string>);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).toMatch(message);
  });

  it('lists every problem at once and never echoes secrets', () => {
    const problems = problemsOf({ PORT: 'x', SLACK_BOT_TOKEN: 'xoxb-secret-value', AGENT_ENROLL_SECRET: 'tiny' });
    expect(problems.some((p) => p.startsWith('PORT:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('AGENT_ENROLL_SECRET:'))).toBe(true);
    expect(problems.join('\n')).not.toContain('tiny');
  });

  it('turns integrations on when configured', () => {
    const c = loadConfig({
      SLACK_BOT_TOKEN: 'xoxb-1',
      SLACK_SIGNING_SECRET: 'sig',
      SERVICENOW_INSTANCE_URL: 'https://acme.service-now.com/',
      SERVICENOW_CLIENT_ID: 'id',
      SERVICENOW_CLIENT_SECRET: 'secret',
      SMTP_URL: 'smtp://u:p@mail:587',
      REPORT_RECIPIENTS: 'a@x.org, b@x.org',
      PATCHOPS_APPROVERS: 'slack:U1, teams:29:abc',
    });
    expect(c.slack).toMatchObject({ enabled: true, botToken: 'xoxb-1', signingSecret: 'sig' });
    expect(c.serviceNow).toMatchObject({
      enabled: true,
      instanceUrl: 'https://acme.service-now.com',
      auth: { kind: 'oauth' },
    });
    expect(c.smtp.reportRecipients).toEqual(['a@x.org', 'b@x.org']);
    expect(c.bootstrap.approvers).toEqual(['slack:U1', 'teams:29:abc']);
  });
});
