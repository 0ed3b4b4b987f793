import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * The one place where the environment is read. Every variable is validated here, once, at start-up;
 * a wrong value stops start-up with a message that names the variable and what it expects.
 */

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === '' ? undefined : v))
  .optional();

const optionalUrl = (what: string) =>
  optionalString.refine((v) => v === undefined || isUrl(v), { message: `expected ${what}` });

const port = (fallback: number) =>
  optionalString.transform((v, ctx) => {
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected a TCP port number from 0 to 65535, got "${v}"` });
      return z.NEVER;
    }
    return n;
  });

const bool = optionalString.transform((v, ctx) => {
  if (v === undefined) return false;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  ctx.addIssue({ code: 'custom', message: `expected true or false, got "${v}"` });
  return z.NEVER;
});

const identityList = optionalString.transform((v, ctx) => {
  if (v === undefined) return [] as string[];
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!/^(slack|teams|servicenow|cli|web):.+$/.test(item)) {
      ctx.addIssue({
        code: 'custom',
        message: `expected comma-separated identities like slack:U0123,teams:29:1abc,cli:ops-admin; "${item}" has no known prefix (slack:, teams:, servicenow:, cli:, web:)`,
      });
      return z.NEVER;
    }
  }
  return items;
});

function isHttpUrl(v: string): boolean {
  return isUrl(v) && /^https?:$/.test(new URL(v).protocol);
}

/** What Fastify's trustProxy (proxy-addr) accepts: an IPv4/IPv6 address, a CIDR range or a named range. */
function isProxyAddress(v: string): boolean {
  if (/^(loopback|linklocal|uniquelocal)$/.test(v)) return true;
  const [addr, bits, ...rest] = v.split('/');
  if (rest.length || !addr || isIP(addr) === 0) return false;
  if (bits === undefined) return true;
  const max = isIP(addr) === 4 ? 32 : 128;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= max;
}

function isUrl(v: string): boolean {
  try {
    new URL(v);
    return true;
  } catch {
    return false;
  }
}

/** PATCHOPS_REPO_MAX_UPLOAD_MB when unset: the largest file one upload may add to the central repository. */
export const DEFAULT_REPO_MAX_UPLOAD_MB = 4096;

const envSchema = z.object({
  NODE_ENV: optionalString,
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'expected one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
  HOST: optionalString.default('127.0.0.1'),
  PORT: port(3000),
  PUBLIC_URL: optionalUrl('an absolute URL such as https://patchops.example.com'),
  TRUST_PROXY: optionalString.refine((v) => v === undefined || v.split(',').every((a) => isProxyAddress(a.trim())), {
    message:
      'expected comma-separated proxy addresses or CIDR ranges (127.0.0.1, 10.0.0.0/8, ::1) or loopback / linklocal / uniquelocal',
  }),
  PATCHOPS_DATA_DIR: optionalString,
  PATCHOPS_CACHE_DIR: optionalString,
  PATCHOPS_DEMO: bool,

  DATABASE_URL: optionalString.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
    message: 'expected a PostgreSQL URL such as postgres://user:pass@host:5432/dbname',
  }),
  PATCHOPS_EMBEDDED_PG_PORT: port(54329),
  DATABASE_APP_URL: optionalString.refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
    message:
      'expected a PostgreSQL URL of a login that is a member of patchops_app, such as postgres://patchops_login:pass@host:5432/dbname',
  }),
  PATCHOPS_AUDIT_CHECKPOINT: optionalString,
  PATCHOPS_AUDIT_CHECKPOINT_MINUTES: optionalString.transform((v, ctx) => {
    if (v === undefined) return 15;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 1440) {
      ctx.addIssue({
        code: 'custom',
        message: `expected whole minutes from 0 (only at start, stop and audit verify) to 1440, got "${v}"`,
      });
      return z.NEVER;
    }
    return n;
  }),

  TEMPORAL_ADDRESS: optionalString.refine((v) => v === undefined || /^[^\s:/]+:\d+$/.test(v), {
    message: 'expected host:port such as temporal.example.com:7233',
  }),
  TEMPORAL_NAMESPACE: optionalString.default('default'),
  TEMPORAL_API_KEY: optionalString,
  TEMPORAL_TLS: bool,
  TEMPORAL_TLS_CERT: optionalString,
  TEMPORAL_TLS_KEY: optionalString,
  TEMPORAL_TLS_CA: optionalString,
  TEMPORAL_CLI: optionalString,
  TEMPORAL_DEV_PORT: port(7233),
  TEMPORAL_UI_PORT: port(8233),

  SLACK_BOT_TOKEN: optionalString.refine((v) => v === undefined || /^xox[bp]-/.test(v), {
    message: 'expected a Slack bot token starting with xoxb-',
  }),
  SLACK_SIGNING_SECRET: optionalString,
  SLACK_APP_TOKEN: optionalString.refine((v) => v === undefined || v.startsWith('xapp-'), {
    message: 'expected a Slack app-level token starting with xapp- (for Socket Mode)',
  }),
  SLACK_API_URL: optionalUrl('the Slack Web API base URL, such as https://slack.com/api/'),
  SLACK_DEFAULT_CHANNEL: optionalString,

  TEAMS_APP_ID: optionalString,
  TEAMS_APP_PASSWORD: optionalString,
  TEAMS_TENANT_ID: optionalString,
  TEAMS_EMULATOR: bool,
  TEAMS_SERVICE_URLS: optionalString.refine((v) => v === undefined || v.split(',').every((u) => isHttpUrl(u.trim())), {
    message:
      'expected comma-separated http(s) URLs of Bot Framework connectors, such as https://connector.example.com/',
  }),

  SERVICENOW_INSTANCE_URL: optionalUrl('your instance URL such as https://acme.service-now.com'),
  SERVICENOW_USERNAME: optionalString,
  SERVICENOW_PASSWORD: optionalString,
  SERVICENOW_CLIENT_ID: optionalString,
  SERVICENOW_CLIENT_SECRET: optionalString,
  SERVICENOW_WEBHOOK_SECRET: optionalString,
  SERVICENOW_ASSIGNMENT_GROUP: optionalString,
  SERVICENOW_WAVE_TASKS: bool,

  SMTP_URL: optionalString.refine((v) => v === undefined || /^smtps?:\/\//.test(v), {
    message: 'expected smtp://user:pass@host:587 or smtps://user:pass@host:465',
  }),
  SMTP_FROM: optionalString.default('patchops <patchops@localhost>'),
  REPORT_RECIPIENTS: optionalString,

  AGENT_ENROLL_SECRET: optionalString.refine((v) => v === undefined || v.length >= 16, {
    message: 'expected at least 16 characters; generate one with: openssl rand -hex 32',
  }),
  SECRETS_KEY: optionalString.refine(
    (v) =>
      v === undefined ||
      /^[0-9a-fA-F]{64}$/.test(v.trim()) ||
      (/^[A-Za-z0-9+/]+={0,2}$/.test(v.trim()) && Buffer.from(v.trim(), 'base64').length === 32),
    { message: 'expected 32 bytes as base64 or hex; generate one with: openssl rand -base64 32' },
  ),
  AGENT_LEASE_SECONDS: optionalString.transform((v, ctx) => {
    if (v === undefined) return 600;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 5 || n > 86_400) {
      ctx.addIssue({ code: 'custom', message: `expected whole seconds from 5 to 86400, got "${v}"` });
      return z.NEVER;
    }
    return n;
  }),
  METRICS_ADDRESS: optionalString.refine((v) => v === undefined || /^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(v), {
    message: 'expected host:port for the Prometheus endpoint, such as 127.0.0.1:9464',
  }),
  TEMPORAL_METRICS_ADDRESS: optionalString.refine((v) => v === undefined || /^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(v), {
    message: "expected host:port for the Temporal SDK's Prometheus exporter, such as 127.0.0.1:9465",
  }),
  AGENT_MAX_HELD_POLLS: optionalString.transform((v, ctx) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a whole number of long polls from 1 to 1000000, got "${v}"; unset it to derive it from the open-file limit (ulimit -n)`,
      });
      return z.NEVER;
    }
    return n;
  }),
  PATCHOPS_REPO_MAX_UPLOAD_MB: optionalString.transform((v, ctx) => {
    if (v === undefined) return DEFAULT_REPO_MAX_UPLOAD_MB;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 1_048_576) {
      ctx.addIssue({
        code: 'custom',
        message: `expected whole megabytes from 1 to 1048576 (the largest file one upload may add to the repository), got "${v}"`,
      });
      return z.NEVER;
    }
    return n;
  }),
  WEBHOOK_ALLOW_PRIVATE: bool,
  PATCHOPS_ADMINS: identityList,
  PATCHOPS_APPROVERS: identityList,
  PATCHOPS_ADMIN_PASSWORD: optionalString.refine((v) => v === undefined || v.length >= 10, {
    message:
      "expected at least 10 characters (the first web admin's password); unset it to have one generated and printed once",
  }),
});

export type RawEnv = z.input<typeof envSchema>;

export interface Config {
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  demo: boolean;
  http: {
    host: string;
    port: number;
    publicUrl: string;
    /** TRUST_PROXY: the reverse proxies whose X-Forwarded-For is believed; empty = none (the socket address counts). */
    trustProxy: string[];
  };
  /** Prometheus endpoints (host:port; unset = off): ours (METRICS_ADDRESS) and the Temporal SDK's (TEMPORAL_METRICS_ADDRESS). */
  metrics: { address: string | undefined; temporalAddress: string | undefined };
  dataDir: string;
  /** SECRETS_KEY: seals secrets kept in the database; unset = `<dataDir>/secrets.key`. */
  secretsKey: string | undefined;
  cacheDir: string;
  /** `appUrl`: the application's own login (member of patchops_app); unset = DATABASE_URL acting as patchops_app. */
  database: { url: string | undefined; embeddedPort: number; appUrl: string | undefined };
  /** The signed audit checkpoint file and how often the running server writes it (0 = at start and stop only). */
  audit: { checkpointFile: string; checkpointMinutes: number };
  temporal: {
    address: string | undefined;
    namespace: string;
    apiKey: string | undefined;
    tls: { enabled: boolean; certPath?: string; keyPath?: string; caPath?: string };
    cliPath: string | undefined;
    devPort: number;
    uiPort: number;
  };
  slack:
    | { enabled: false }
    | {
        enabled: true;
        botToken: string;
        signingSecret: string | undefined;
        appToken: string | undefined;
        apiUrl: string | undefined;
        defaultChannel: string | undefined;
      };
  /**
   * Teams is mounted at POST /api/messages only when enabled: `jwt` (TEAMS_APP_ID + TEAMS_APP_PASSWORD, Bot
   * Framework JWTs validated) or `emulator` (TEAMS_EMULATOR=true, no JWTs, loopback callers only).
   */
  teams: {
    enabled: boolean;
    mode: 'off' | 'jwt' | 'emulator';
    appId: string | undefined;
    appPassword: string | undefined;
    tenantId: string | undefined;
    /** TEAMS_SERVICE_URLS: connectors replies may go to besides Bot Framework's documented Teams hosts. */
    serviceUrls: string[];
  };
  serviceNow:
    | { enabled: false; webhookSecret: string | undefined }
    | {
        enabled: true;
        instanceUrl: string;
        auth:
          | { kind: 'basic'; username: string; password: string }
          | { kind: 'oauth'; clientId: string; clientSecret: string; username?: string; password?: string };
        webhookSecret: string | undefined;
        assignmentGroup: string | undefined;
        /** A change task per deployment wave, closed with the wave's result. */
        waveTasks: boolean;
      };
  smtp: { enabled: boolean; url: string | undefined; from: string; reportRecipients: string[] };
  agents: { enrollSecret: string | undefined; leaseSeconds: number; maxHeldPolls: number | undefined };
  /** The central repository: the largest file one upload (POST /api/v1/repository/files) may add, in bytes. */
  repository: { maxUploadBytes: number };
  /** Outbound webhooks: `allowPrivate` (WEBHOOK_ALLOW_PRIVATE) lets them reach loopback, private and link-local addresses. */
  webhooks: { allowPrivate: boolean };
  bootstrap: { admins: string[]; approvers: string[]; adminPassword?: string };
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`Configuration is not valid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment. Throws ConfigError listing every problem, each naming its variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env, cwd = process.cwd()): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const value = env[name];
      const shown = value === undefined ? '' : ` (got "${redact(name, value)}")`;
      return `${name}: ${issue.message}${issue.message.includes('got "') ? '' : shown}`;
    });
    throw new ConfigError(problems);
  }
  const e = parsed.data;
  const problems: string[] = [];

  if (e.SLACK_BOT_TOKEN && !e.SLACK_SIGNING_SECRET && !e.SLACK_APP_TOKEN) {
    problems.push(
      'SLACK_SIGNING_SECRET is not set: Slack requests cannot be verified. Set it (or SLACK_APP_TOKEN for Socket Mode), or unset SLACK_BOT_TOKEN to run without Slack.',
    );
  }
  if (!e.SLACK_BOT_TOKEN && (e.SLACK_SIGNING_SECRET || e.SLACK_APP_TOKEN)) {
    problems.push(
      'SLACK_BOT_TOKEN is not set but other SLACK_ variables are: set SLACK_BOT_TOKEN (xoxb-…) to turn Slack on.',
    );
  }
  if (Boolean(e.TEAMS_APP_ID) !== Boolean(e.TEAMS_APP_PASSWORD)) {
    problems.push(
      'TEAMS_APP_ID and TEAMS_APP_PASSWORD go together: set both to validate Teams requests, or neither to run without Teams.',
    );
  }
  if (e.TEAMS_EMULATOR && e.TEAMS_APP_ID) {
    problems.push(
      'TEAMS_EMULATOR=true turns JWT validation off, but TEAMS_APP_ID is set: unset TEAMS_EMULATOR to validate Teams requests.',
    );
  }
  let snAuth: Extract<Config['serviceNow'], { enabled: true }>['auth'] | undefined;
  if (e.SERVICENOW_INSTANCE_URL) {
    if (e.SERVICENOW_CLIENT_ID || e.SERVICENOW_CLIENT_SECRET) {
      if (!e.SERVICENOW_CLIENT_ID || !e.SERVICENOW_CLIENT_SECRET) {
        problems.push('SERVICENOW_CLIENT_ID and SERVICENOW_CLIENT_SECRET go together for OAuth: set both.');
      } else {
        snAuth = {
          kind: 'oauth',
          clientId: e.SERVICENOW_CLIENT_ID,
          clientSecret: e.SERVICENOW_CLIENT_SECRET,
          username: e.SERVICENOW_USERNAME,
          password: e.SERVICENOW_PASSWORD,
        };
      }
    } else if (e.SERVICENOW_USERNAME && e.SERVICENOW_PASSWORD) {
      snAuth = { kind: 'basic', username: e.SERVICENOW_USERNAME, password: e.SERVICENOW_PASSWORD };
    } else {
      problems.push(
        'SERVICENOW_INSTANCE_URL is set but no credentials are: set SERVICENOW_USERNAME and SERVICENOW_PASSWORD (basic auth) or SERVICENOW_CLIENT_ID and SERVICENOW_CLIENT_SECRET (OAuth), or unset SERVICENOW_INSTANCE_URL.',
      );
    }
  }
  if ((e.TEMPORAL_TLS_CERT && !e.TEMPORAL_TLS_KEY) || (!e.TEMPORAL_TLS_CERT && e.TEMPORAL_TLS_KEY)) {
    problems.push('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together for mTLS: set both paths, or neither.');
  }
  if (!e.TEMPORAL_ADDRESS && (e.TEMPORAL_API_KEY || e.TEMPORAL_TLS_CERT)) {
    problems.push(
      'TEMPORAL_API_KEY / TEMPORAL_TLS_CERT need TEMPORAL_ADDRESS: the embedded dev server takes no credentials.',
    );
  }
  if (e.DATABASE_APP_URL && !e.DATABASE_URL) {
    problems.push(
      'DATABASE_APP_URL needs DATABASE_URL (the owner that runs migrations): set both, or neither for the embedded database.',
    );
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const dataDir = path.resolve(cwd, e.PATCHOPS_DATA_DIR ?? 'data');
  const home = process.env.HOME ?? cwd;
  const cacheDir = path.resolve(
    e.PATCHOPS_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(home, '.cache'), 'patchops'),
  );

  return {
    logLevel: e.LOG_LEVEL,
    demo: e.PATCHOPS_DEMO,
    http: {
      host: e.HOST,
      port: e.PORT,
      publicUrl: (e.PUBLIC_URL ?? `http://${e.HOST === '0.0.0.0' ? '127.0.0.1' : e.HOST}:${e.PORT}`).replace(/\/$/, ''),
      trustProxy: list(e.TRUST_PROXY),
    },
    metrics: { address: e.METRICS_ADDRESS, temporalAddress: e.TEMPORAL_METRICS_ADDRESS },
    dataDir,
    cacheDir,
    database: { url: e.DATABASE_URL, embeddedPort: e.PATCHOPS_EMBEDDED_PG_PORT, appUrl: e.DATABASE_APP_URL },
    audit: {
      checkpointFile: path.resolve(cwd, e.PATCHOPS_AUDIT_CHECKPOINT ?? path.join(dataDir, 'audit-checkpoint.json')),
      checkpointMinutes: e.PATCHOPS_AUDIT_CHECKPOINT_MINUTES,
    },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      apiKey: e.TEMPORAL_API_KEY,
      tls: {
        enabled: e.TEMPORAL_TLS || Boolean(e.TEMPORAL_TLS_CERT) || Boolean(e.TEMPORAL_API_KEY),
        certPath: e.TEMPORAL_TLS_CERT,
        keyPath: e.TEMPORAL_TLS_KEY,
        caPath: e.TEMPORAL_TLS_CA,
      },
      cliPath: e.TEMPORAL_CLI,
      devPort: e.TEMPORAL_DEV_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
    },
    slack: e.SLACK_BOT_TOKEN
      ? {
          enabled: true,
          botToken: e.SLACK_BOT_TOKEN,
          signingSecret: e.SLACK_SIGNING_SECRET,
          appToken: e.SLACK_APP_TOKEN,
          apiUrl: e.SLACK_API_URL,
          defaultChannel: e.SLACK_DEFAULT_CHANNEL,
        }
      : { enabled: false },
    teams: {
      enabled: Boolean(e.TEAMS_APP_ID) || e.TEAMS_EMULATOR,
      mode: e.TEAMS_APP_ID ? 'jwt' : e.TEAMS_EMULATOR ? 'emulator' : 'off',
      appId: e.TEAMS_APP_ID,
      appPassword: e.TEAMS_APP_PASSWORD,
      tenantId: e.TEAMS_TENANT_ID,
      serviceUrls: list(e.TEAMS_SERVICE_URLS),
    },
    serviceNow:
      e.SERVICENOW_INSTANCE_URL && snAuth
        ? {
            enabled: true,
            instanceUrl: e.SERVICENOW_INSTANCE_URL.replace(/\/$/, ''),
            auth: snAuth,
            webhookSecret: e.SERVICENOW_WEBHOOK_SECRET,
            assignmentGroup: e.SERVICENOW_ASSIGNMENT_GROUP,
            waveTasks: e.SERVICENOW_WAVE_TASKS,
          }
        : { enabled: false, webhookSecret: e.SERVICENOW_WEBHOOK_SECRET },
    smtp: {
      enabled: Boolean(e.SMTP_URL),
      url: e.SMTP_URL,
      from: e.SMTP_FROM,
      reportRecipients: (e.REPORT_RECIPIENTS ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    },
    secretsKey: e.SECRETS_KEY,
    agents: {
      enrollSecret: e.AGENT_ENROLL_SECRET,
      leaseSeconds: e.AGENT_LEASE_SECONDS,
      maxHeldPolls: e.AGENT_MAX_HELD_POLLS,
    },
    repository: { maxUploadBytes: e.PATCHOPS_REPO_MAX_UPLOAD_MB * 1024 * 1024 },
    webhooks: { allowPrivate: e.WEBHOOK_ALLOW_PRIVATE },
    bootstrap: { admins: e.PATCHOPS_ADMINS, approvers: e.PATCHOPS_APPROVERS, adminPassword: e.PATCHOPS_ADMIN_PASSWORD },
  };
}

function list(v: string | undefined): string[] {
  return (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function redact(name: string, value: string): string {
  return /SECRET|PASSWORD|TOKEN|KEY/.test(name) ? '…redacted…' : value;
}

/** Every variable the product reads, with a one-line description: used by the README, .env.example and doctor. */
export const CONFIG_VARIABLES: ReadonlyArray<{ name: keyof RawEnv; description: string; default?: string }> = [
  {
    name: 'PORT',
    description: 'HTTP port of the server (dashboard, Slack, Teams, agent gateway, webhooks)',
    default: '3000',
  },
  { name: 'HOST', description: 'Interface the HTTP server binds to', default: '127.0.0.1' },
  {
    name: 'PUBLIC_URL',
    description: 'URL people and agents reach the server at (links in chat, email, ServiceNow)',
    default: 'http://HOST:PORT',
  },
  { name: 'LOG_LEVEL', description: 'pino log level', default: 'info' },
  { name: 'PATCHOPS_DATA_DIR', description: 'Where embedded state lives (PGlite, Temporal SQLite)', default: './data' },
  {
    name: 'PATCHOPS_CACHE_DIR',
    description: 'Cache outside the clone (the Temporal CLI build)',
    default: '~/.cache/patchops',
  },
  {
    name: 'PATCHOPS_DEMO',
    description: 'Explicit demo mode: local fakes of Slack/ServiceNow/SMTP and a simulated fleet',
    default: 'false',
  },
  {
    name: 'DATABASE_URL',
    description: 'PostgreSQL URL; unset = embedded PGlite under ./data served on the wire protocol',
  },
  {
    name: 'PATCHOPS_EMBEDDED_PG_PORT',
    description:
      'Port of the embedded PGlite wire-protocol server (loopback only; password in PATCHOPS_DATA_DIR/pglite.password, created on first start)',
    default: '54329',
  },
  {
    name: 'DATABASE_APP_URL',
    description:
      "The application's own login (a member of patchops_app, which may only INSERT and SELECT the audit log); unset = DATABASE_URL acting as patchops_app. DATABASE_URL then only runs migrations",
  },
  {
    name: 'PATCHOPS_AUDIT_CHECKPOINT',
    description: "Signed checkpoint file of the audit chain's head, kept outside the database",
    default: 'PATCHOPS_DATA_DIR/audit-checkpoint.json',
  },
  {
    name: 'PATCHOPS_AUDIT_CHECKPOINT_MINUTES',
    description:
      'How often the running server writes the audit checkpoint (also at start, stop and audit verify; 0 = only then)',
    default: '15',
  },
  {
    name: 'TEMPORAL_ADDRESS',
    description: 'host:port of a Temporal cluster or Temporal Cloud; unset = embedded dev server',
  },
  { name: 'TEMPORAL_NAMESPACE', description: 'Temporal namespace', default: 'default' },
  { name: 'TEMPORAL_API_KEY', description: 'API key for Temporal Cloud (implies TLS)' },
  { name: 'TEMPORAL_TLS', description: 'Use TLS to TEMPORAL_ADDRESS', default: 'false' },
  { name: 'TEMPORAL_TLS_CERT', description: 'Client certificate path for mTLS' },
  { name: 'TEMPORAL_TLS_KEY', description: 'Client key path for mTLS' },
  { name: 'TEMPORAL_TLS_CA', description: 'CA bundle path for the server certificate' },
  { name: 'TEMPORAL_CLI', description: 'Path to a temporal CLI binary (skips discovery and build)' },
  { name: 'TEMPORAL_DEV_PORT', description: 'gRPC port of the embedded dev server', default: '7233' },
  { name: 'TEMPORAL_UI_PORT', description: 'Web UI port of the embedded dev server', default: '8233' },
  { name: 'SLACK_BOT_TOKEN', description: 'Slack bot token (xoxb-…); unset = Slack off' },
  { name: 'SLACK_SIGNING_SECRET', description: 'Slack signing secret, verifies every request' },
  { name: 'SLACK_APP_TOKEN', description: 'Slack app-level token (xapp-…) for Socket Mode' },
  {
    name: 'SLACK_API_URL',
    description: 'Slack Web API base URL (a proxy, or the test fake)',
    default: 'https://slack.com/api/',
  },
  { name: 'SLACK_DEFAULT_CHANNEL', description: 'Channel for approval requests when the policy names none' },
  {
    name: 'TRUST_PROXY',
    description:
      'Reverse proxies whose X-Forwarded-For is believed (addresses, CIDRs, loopback); unset = none: the socket address is the client',
  },
  {
    name: 'METRICS_ADDRESS',
    description:
      'host:port where this process serves Prometheus metrics at /metrics (HTTP, polls, activities, jobs, cycles, Node); unset = off',
  },
  {
    name: 'TEMPORAL_METRICS_ADDRESS',
    description:
      "host:port of the Temporal SDK's own Prometheus exporter in a worker process (task slots, poll latency, workflow and activity failures); unset = off",
  },
  {
    name: 'TEAMS_APP_ID',
    description: 'Microsoft app id of the Teams bot; unset = Teams off (POST /api/messages not mounted)',
  },
  { name: 'TEAMS_APP_PASSWORD', description: 'Client secret of the Teams bot' },
  { name: 'TEAMS_TENANT_ID', description: 'Tenant id for a single-tenant bot' },
  {
    name: 'TEAMS_EMULATOR',
    description: 'Local Bot Framework Emulator mode: /api/messages without JWT validation, loopback callers only',
    default: 'false',
  },
  {
    name: 'TEAMS_SERVICE_URLS',
    description:
      'Extra Bot Framework connector URLs replies may go to (besides smba.trafficmanager.net and the government clouds)',
  },
  { name: 'SERVICENOW_INSTANCE_URL', description: 'ServiceNow instance URL; unset = ServiceNow off' },
  { name: 'SERVICENOW_USERNAME', description: 'ServiceNow user (basic auth, or OAuth password grant)' },
  { name: 'SERVICENOW_PASSWORD', description: 'ServiceNow password' },
  { name: 'SERVICENOW_CLIENT_ID', description: 'OAuth client id (/oauth_token.do)' },
  { name: 'SERVICENOW_CLIENT_SECRET', description: 'OAuth client secret' },
  { name: 'SERVICENOW_WEBHOOK_SECRET', description: 'Shared secret ServiceNow sends to /webhooks/servicenow' },
  { name: 'SERVICENOW_ASSIGNMENT_GROUP', description: 'Assignment group for change requests' },
  {
    name: 'SERVICENOW_WAVE_TASKS',
    description: 'A change task per deployment wave, closed with its result',
    default: 'false',
  },
  { name: 'SMTP_URL', description: 'SMTP server for email reports (smtp://user:pass@host:587); unset = email off' },
  { name: 'SMTP_FROM', description: 'From address of email reports', default: 'patchops <patchops@localhost>' },
  { name: 'REPORT_RECIPIENTS', description: 'Comma-separated addresses that receive cycle reports and digests' },
  {
    name: 'AGENT_ENROLL_SECRET',
    description: 'Initial agent enrolment secret (≥16 chars); more can be added by command',
  },
  {
    name: 'SECRETS_KEY',
    description:
      'Key (32 bytes, base64 or hex) sealing secrets the database keeps, such as the manifest-signing key, and keying the audit chain; unset = PATCHOPS_DATA_DIR/secrets.key, created on first start',
  },
  {
    name: 'AGENT_LEASE_SECONDS',
    description: 'How long an agent has to report a job before it is offered again',
    default: '600',
  },
  {
    name: 'AGENT_MAX_HELD_POLLS',
    description:
      'Agent long polls one server process holds open at most (each is a socket); more are answered at once with Retry-After',
    default: 'half of (ulimit -n − 1024)',
  },
  {
    name: 'PATCHOPS_REPO_MAX_UPLOAD_MB',
    description:
      'Largest file one upload to the central repository may be (`patchops repo add`, POST /api/v1/repository/files), in MB; larger uploads are refused with 413',
    default: '4096',
  },
  {
    name: 'WEBHOOK_ALLOW_PRIVATE',
    description:
      'Let outbound webhooks reach loopback, private and link-local addresses (internal receivers); otherwise they go to public addresses only',
    default: 'false',
  },
  { name: 'PATCHOPS_ADMINS', description: 'First-run admins, e.g. slack:U0123,teams:29:1abc,cli:ops-admin' },
  { name: 'PATCHOPS_APPROVERS', description: 'First-run approvers, same form as PATCHOPS_ADMINS' },
  {
    name: 'PATCHOPS_ADMIN_PASSWORD',
    description:
      'Password of the first dashboard admin (web user "admin"), created at first start; unset = generated and printed once',
  },
];
