/**
 * Malformed requests against every route the whole server registers (enumerated through Fastify's onRoute
 * hook, so a new route is fuzzed without editing this file): the agent gateway, Slack, Teams (emulator mode,
 * so activities reach the bot), the ServiceNow webhook, the dashboard and /healthz. fast-check generates
 * the method, path parameters, query, headers (cookies, bearer tokens, signatures, forwarded-for) and
 * bodies (broken JSON, JSON of every shape, domain-shaped objects with hostile values, forms), sometimes
 * carrying real credentials so requests get past authentication.
 *
 * The properties: no response is ≥ 500; no request answered with ≥ 400 changes the row count of any table;
 * the server still answers over real HTTP at the end. FUZZ_RUNS sets the number of requests (default 300 for
 * `npm test`; `npm run test:fuzz` runs 10,000). FUZZ_SEED replays a failing run.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startFullServer,
  FUZZ_ENROLL_SECRET,
  FUZZ_SERVICENOW_SECRET,
  FUZZ_SLACK_SECRET,
  type FullServer,
} from './full-server';

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined;
const PER_REQUEST_TIMEOUT_MS = 15_000;

let s: FullServer;

beforeAll(async () => {
  s = await startFullServer();
}, 120_000);
afterAll(async () => {
  await s?.close();
});

// ------------------------------------------------------------------ generators

const HOSTILE = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '%00',
  '%',
  '%zz',
  '%E0%A4%A',
  '1e300',
  '1e400',
  '-1e400',
  '-1',
  '0',
  '-0',
  'NaN',
  'Infinity',
  '9'.repeat(400),
  '0x10',
  '1.5',
  'not-a-date',
  '2026-13-45',
  '99999-01-01',
  '-271821-04-20T00:00:00Z',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '\\',
  '/\\evil.example',
  '//evil.example',
  'https://evil.example/',
  '{}',
  '[]',
  'null',
  'true',
  '\uD800',
  '\uDFFF',
  '𝕏'.repeat(40),
  'a'.repeat(5000),
  '__proto__',
  'constructor',
  'toString',
  '$ne',
  'DROP TABLE audit_log;',
  '\r\nX-Injected: 1',
  'C0FUZZ',
  'cyc-fuzz',
  'fuzz-admin',
  'linux',
  // Real values now and then, so a request gets past one check and meets the next.
  FUZZ_ENROLL_SECRET,
  'T0FUZZ',
  'U0FUZZ',
  'event_callback',
  'block_actions',
  'view_submission',
  '/patch',
  'CHG0030001',
  'approved',
  'implement',
];

const text = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE) },
  { weight: 2, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.double().map(String) },
  {
    weight: 1,
    arbitrary: fc
      .date({ noInvalidDate: false })
      .map((d) => (Number.isNaN(d.getTime()) ? 'Invalid Date' : d.toISOString())),
  },
);

const scalar = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(1e300, -1e300, Number.MAX_SAFE_INTEGER + 2, -0),
);

const FIELDS = [
  // agent wire contract
  'enrollSecret',
  'machineId',
  'hostname',
  'osFamily',
  'osName',
  'osVersion',
  'arch',
  'agentVersion',
  'protocolVersion',
  'site',
  'status',
  'patches',
  'missing',
  'patchId',
  'title',
  'vendor',
  'product',
  'type',
  'vendorSeverity',
  'severitySource',
  'cvss',
  'cves',
  'releasedAt',
  'supersededBy',
  'packages',
  'manager',
  'name',
  'version',
  'state',
  'error',
  'installedVersion',
  'log',
  'rebootPending',
  'rebootRequired',
  'installed',
  'inventory',
  // ServiceNow notification
  'number',
  'sys_id',
  'sys_mod_count',
  'approval',
  'start_date',
  'end_date',
  'correlation_id',
  'sys_updated_on',
  // Bot Framework activity
  'serviceUrl',
  'channelId',
  'from',
  'conversation',
  'recipient',
  'text',
  'value',
  'action',
  'replyToId',
  'channelData',
  'membersAdded',
  'id',
  'timestamp',
  // Slack
  'payload',
  'command',
  'user_id',
  'team_id',
  'response_url',
  'trigger_id',
  'ssl_check',
  'event',
  'challenge',
  'token',
];

const domainObject: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ obj: Record<string, unknown>; value: unknown }>(
  (tie) => ({
    obj: fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 8 }),
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      scalar,
      fc.array(tie('value'), { maxLength: 3 }),
      tie('obj'),
    ),
  }),
).obj;

const activityTypes = fc.constantFrom(
  'message',
  'invoke',
  'installationUpdate',
  'conversationUpdate',
  'event',
  'typing',
  'messageReaction',
);
const teamsActivity = fc.record(
  {
    type: fc.oneof(activityTypes, text),
    name: fc.oneof(fc.constant('adaptiveCard/action'), text),
    serviceUrl: fc.oneof(fc.constant('CONNECTOR'), text),
    channelId: fc.oneof(fc.constant('msteams'), text),
    from: fc.oneof(fc.record({ id: fc.oneof(fc.constant('29:admin'), text), name: text }), scalar),
    conversation: fc.oneof(fc.record({ id: text, conversationType: text, tenantId: text }), scalar),
    recipient: fc.oneof(fc.record({ id: text }), scalar),
    text: text,
    action: fc.oneof(fc.constantFrom('add', 'remove'), text),
    replyToId: text,
    value: fc.oneof(
      domainObject,
      fc.record({ action: fc.record({ type: fc.constant('Action.Execute'), verb: text, data: domainObject }) }),
    ),
    membersAdded: fc.array(fc.record({ id: text }), { maxLength: 2 }),
  },
  { requiredKeys: ['type'] },
);

const agentResult = fc.record({
  status: fc.oneof(fc.constantFrom('succeeded', 'failed'), text),
  missing: fc.array(
    fc.record(
      {
        patchId: text,
        title: text,
        vendor: text,
        type: text,
        releasedAt: text,
        cvss: scalar,
        cves: fc.array(text, { maxLength: 2 }),
        packages: fc.array(domainObject, { maxLength: 2 }),
      },
      { requiredKeys: [] },
    ),
    { maxLength: 3 },
  ),
  patches: fc.array(
    fc.record(
      { patchId: text, state: fc.oneof(fc.constantFrom('installed', 'failed'), text), error: text },
      { requiredKeys: [] },
    ),
    { maxLength: 3 },
  ),
  log: text,
});

type Body =
  | { kind: 'none' }
  | { kind: 'raw'; text: string; contentType: string }
  | { kind: 'json'; value: unknown }
  | { kind: 'form'; fields: Record<string, string> };

const body: fc.Arbitrary<Body> = fc.oneof(
  fc.constant<Body>({ kind: 'none' }),
  fc.record({
    kind: fc.constant('raw' as const),
    text: fc.oneof(
      fc.constantFrom('{', '{"a":', '[1,2', '"\\ud800"', 'nul', '{"__proto__":{"x":1}}', '\u0000', '%%%'),
      text,
    ),
    contentType: fc.constantFrom(
      'application/json',
      'application/x-www-form-urlencoded',
      'text/plain',
      'application/octet-stream',
      'multipart/form-data; boundary=x',
      'application/json; charset=utf-16',
      'garbage/;;;',
    ),
  }),
  fc.record({
    kind: fc.constant('json' as const),
    value: fc.oneof(fc.jsonValue({ maxDepth: 3 }), domainObject, teamsActivity, teamsActivity, agentResult),
  }),
  fc.record({
    kind: fc.constant('form' as const),
    fields: fc.dictionary(
      fc.oneof(
        fc.constantFrom(
          '_csrf',
          'username',
          'password',
          'next',
          'reason',
          'patchId',
          'endpointId',
          'groupName',
          'expiresAt',
          'groups',
          'policy',
          'emergency',
          'payload',
          'command',
          'text',
          'user_id',
          'response_url',
          'ssl_check',
        ),
        fc.string({ maxLength: 6 }),
      ),
      fc.oneof(text, fc.constant('CSRF')),
      { maxKeys: 6 },
    ),
  }),
);

const QUERY_KEYS = [
  'page',
  'before',
  'from',
  'to',
  'next',
  'q',
  'os',
  'group',
  'compliance',
  'severity',
  'wait',
  'ok',
  'error',
  'actor',
  'action',
  'subjectType',
  'subjectId',
];
const query = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string({ maxLength: 5 })), text, fc.boolean()),
  { maxLength: 4 },
);

type Credential = 'none' | 'session' | 'session+csrf' | 'agent' | 'servicenow' | 'slack-signed' | 'garbage';
const request = fc.record({
  routeIndex: fc.nat(),
  // Mostly the route's own method; now and then another one.
  methodOverride: fc.oneof(
    { weight: 9, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS') },
  ),
  params: fc.array(text, { minLength: 4, maxLength: 4 }),
  rawParam: fc.boolean(),
  query,
  body,
  credential: fc.constantFrom<Credential>(
    'none',
    'session',
    'session+csrf',
    'agent',
    'servicenow',
    'slack-signed',
    'garbage',
  ),
  garbage: text,
  cookieExtra: fc.oneof(
    { weight: 2, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.constant('patchops_session=%E0%A4%A'),
        text.map((t) => `patchops_session=${t}`),
        text.map((t) => `patchops_login_csrf=${t}`),
        text,
      ),
    },
  ),
  origin: fc.constantFrom('none', 'self', 'evil', 'null'),
  forwardedFor: fc.oneof({ weight: 2, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: text }),
  accept: fc.constantFrom('text/html', 'application/json', '*/*'),
});

// ------------------------------------------------------------------ building one request

/** encodeURIComponent throws on a lone surrogate; a browser sends U+FFFD for one, so do that. */
const enc = (v: string) =>
  encodeURIComponent(v.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD'));
const headerSafe = (v: string) => v.replace(/[^\t\x20-\x7e]/g, '').slice(0, 2000);

function fillPath(url: string, params: string[], raw: boolean): string {
  let i = 0;
  return url.replace(/:[A-Za-z0-9_]+|\*/g, () => {
    const p = params[i++ % params.length] ?? '';
    return raw ? headerSafe(p).replace(/[/?#\s]/g, '') || 'x' : enc(p);
  });
}

function describeRequest(r: {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload?: string;
}): string {
  return JSON.stringify({ method: r.method, url: r.url, headers: r.headers, payload: r.payload?.slice(0, 500) });
}

type Generated = typeof request extends fc.Arbitrary<infer T> ? T : never;

function toInject(g: Generated) {
  const route = s.routes[g.routeIndex % s.routes.length]!;
  const method = g.methodOverride ?? route.method;
  const qs = g.query
    .map(([k, v, broken]) =>
      broken ? `${headerSafe(k)}=${headerSafe(v).replace(/[#\s&]/g, '')}` : `${enc(k)}=${enc(v)}`,
    )
    .join('&');
  const url = `${fillPath(route.url, g.params, g.rawParam)}${qs ? `?${qs}` : ''}`;
  const headers: Record<string, string> = { accept: g.accept, host: 'fuzz.local' };
  let payload: string | undefined;
  switch (g.body.kind) {
    case 'raw':
      payload = g.body.text;
      headers['content-type'] = g.body.contentType;
      break;
    case 'json':
      payload =
        JSON.stringify(g.body.value, (_k, v: unknown) =>
          typeof v === 'string' && v === 'CONNECTOR' ? s.connector.serviceUrl : v,
        ) ?? 'null';
      headers['content-type'] = 'application/json';
      break;
    case 'form': {
      const f: Record<string, string> = Object.fromEntries(
        Object.entries(g.body.fields).map(([k, v]) => [k, v === 'CSRF' ? s.session.csrf : String(v)]),
      );
      payload = new URLSearchParams(f).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      break;
    }
  }
  if (method === 'GET' || method === 'HEAD') payload = undefined;
  const cookies: string[] = [];
  switch (g.credential) {
    case 'session':
      cookies.push(s.session.cookie);
      break;
    case 'session+csrf':
      cookies.push(s.session.cookie, 'patchops_login_csrf=CSRFX');
      if (payload !== undefined && g.body.kind === 'form')
        payload = `${payload}&_csrf=${encodeURIComponent(s.session.csrf)}`;
      break;
    case 'agent':
      headers.authorization = s.agentAuth;
      break;
    case 'servicenow':
      headers['x-patchops-secret'] = FUZZ_SERVICENOW_SECRET;
      break;
    case 'slack-signed': {
      const ts = Math.floor(Date.now() / 1000);
      headers['x-slack-request-timestamp'] = String(ts);
      headers['x-slack-signature'] = `v0=${createHmac('sha256', FUZZ_SLACK_SECRET)
        .update(`v0:${ts}:${payload ?? ''}`)
        .digest('hex')}`;
      break;
    }
    case 'garbage':
      headers.authorization = headerSafe(`Bearer ${g.garbage}`);
      headers['x-patchops-secret'] = headerSafe(g.garbage) || 'x';
      headers['x-slack-signature'] = headerSafe(`v0=${g.garbage}`);
      headers['x-slack-request-timestamp'] = headerSafe(g.garbage) || '0';
      break;
  }
  if (g.cookieExtra) cookies.push(headerSafe(g.cookieExtra));
  if (cookies.length) headers.cookie = cookies.join('; ');
  if (g.origin !== 'none')
    headers.origin = g.origin === 'self' ? 'http://fuzz.local' : g.origin === 'evil' ? 'https://evil.example' : 'null';
  if (g.forwardedFor) headers['x-forwarded-for'] = headerSafe(g.forwardedFor) || '1';
  return { method, url, headers, payload, route: `${method} ${route.url}` };
}

// ------------------------------------------------------------------ the property

describe('fuzzing every route with malformed requests', () => {
  it(`covers every registered route`, () => {
    const paths = new Set(s.routes.map((r) => r.url));
    for (const p of [
      '/healthz',
      '/slack/events',
      '/api/messages',
      '/webhooks/servicenow',
      '/agent/v1/enroll',
      '/agent/v1/jobs/:id/result',
      '/login',
      '/endpoints',
      '/audit',
    ]) {
      expect(paths, p).toContain(p);
    }
  });

  it(
    `${RUNS} generated requests: none ≥ 500, no row written by a refused request, the server alive`,
    async () => {
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      const byRoute = new Map<string, number>();
      let sent = 0;
      const started = Date.now();
      await fc
        .assert(
          fc.asyncProperty(request, async (g) => {
            const r = toInject(g);
            const before = await s.rowCounts();
            let timer: NodeJS.Timeout | undefined;
            const res = await Promise.race([
              s.app.inject({
                method: r.method as 'GET',
                url: r.url,
                headers: r.headers,
                ...(r.payload !== undefined ? { payload: r.payload } : {}),
              }),
              new Promise<null>((resolve) => {
                timer = setTimeout(() => resolve(null), PER_REQUEST_TIMEOUT_MS);
              }),
            ]).finally(() => clearTimeout(timer));
            sent += 1;
            if (sent % 500 === 0) {
              // The process is alive throughout: every 500 requests it still answers over real HTTP.
              const alive = await fetch(`${s.url}/healthz`).then(
                (x) => x.status,
                (e: unknown) => String(e),
              );
              if (alive !== 200) failures.push(`after ${sent} requests /healthz over HTTP answered ${alive}`);
            }
            if (!res) {
              failures.push(`no answer within ${PER_REQUEST_TIMEOUT_MS} ms: ${describeRequest(r)}`);
              return false;
            }
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            if (process.env.FUZZ_BY_ROUTE)
              byRoute.set(`${r.route} ${res.statusCode}`, (byRoute.get(`${r.route} ${res.statusCode}`) ?? 0) + 1);
            if (res.statusCode >= 500) {
              failures.push(`${res.statusCode} ${res.body.slice(0, 300)} for ${describeRequest(r)}`);
              return false;
            }
            if (res.statusCode >= 400) {
              const after = await s.rowCounts();
              const changed = Object.keys(after).filter((t) => after[t] !== before[t]);
              if (changed.length) {
                failures.push(`${res.statusCode} but rows changed in ${changed.join(', ')} for ${describeRequest(r)}`);
                return false;
              }
            }
            return true;
          }),
          { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}), endOnFailure: true },
        )
        .catch((e: unknown) => {
          throw new Error(`${failures.slice(-3).join('\n')}\n${(e as Error).message.slice(0, 3000)}`);
        });
      const alive = await fetch(`${s.url}/healthz`);
      expect(alive.status).toBe(200);
      const seconds = (Date.now() - started) / 1000;
      if (byRoute.size)
        console.log(
          [...byRoute]
            .sort()
            .map(([k, n]) => `${k}: ${n}`)
            .join('\n'),
        );
      console.log(
        `fuzz: ${sent} requests over ${s.routes.length} routes in ${seconds.toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
      );
      expect(failures).toEqual([]);
    },
    Math.max(120_000, RUNS * 200),
  );
});
