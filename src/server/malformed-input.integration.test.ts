/**
 * Issue #11 item 6 over real HTTP against the whole server: each malformed input that used to give a 500
 * (some with the SQL and its parameters in the body) is now a 4xx or a clamped page, changes no row, and
 * no response body carries SQL, parameters or a stack.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FUZZ_SLACK_SECRET, startFullServer, type FullServer } from '../../test/fuzz/full-server';
import { jobId as dispatchJobId } from '../db/agent-jobs';
import { agentJobs } from '../db/schema/index';
import { buildServer } from './app';
import { createLogger } from '../logging';

let s: FullServer;

beforeAll(async () => {
  s = await startFullServer();
}, 120_000);
afterAll(async () => {
  await s?.close();
});

const LEAKS = /select |insert |update |delete |from "|params:|Failed query|\n\s+at |node_modules|\.ts:\d+/i;

async function http(path: string, init: RequestInit & { cookie?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.cookie !== undefined) headers.set('cookie', init.cookie);
  const res = await fetch(`${s.url}${path}`, { ...init, headers, redirect: 'manual' });
  return { status: res.status, body: await res.text(), headers: res.headers };
}

const dash = (path: string) => http(path, { cookie: s.session.cookie, headers: { accept: 'text/html' } });

async function unchanged<T>(act: () => Promise<T>): Promise<T> {
  const before = await s.rowCounts();
  const out = await act();
  expect(await s.rowCounts()).toEqual(before);
  return out;
}

describe('malformed input is refused with a 4xx (or clamped), never a 500, and changes nothing', () => {
  it('a malformed session cookie is a 400 that clears the cookie', async () => {
    const r = await unchanged(() => http('/endpoints', { cookie: 'patchops_session=%E0%A4%A' }));
    expect(r.status).toBe(400);
    expect(r.body).toContain('patchops_session cookie is malformed');
    expect(r.headers.get('set-cookie')).toMatch(/^patchops_session=; .*Max-Age=0/);
    expect(r.body).not.toMatch(LEAKS);
  });

  it.each([
    ['/endpoints?page=1e300'],
    ['/endpoints?page=-7'],
    ['/endpoints?page=NaN&page=2'],
    ['/audit?before=1e400'],
    ['/audit?before=-1'],
  ])('%s is clamped to a page that exists', async (path) => {
    const r = await unchanged(() => dash(path));
    expect(r.status, r.body.slice(0, 300)).toBe(200);
  });

  it.each([['/audit?from=not-a-date'], ['/audit?to=99999-01-01'], ['/audit.csv?from=2026-13-45']])(
    '%s is a 400 naming the date field',
    async (path) => {
      const r = await unchanged(() => dash(path));
      expect(r.status).toBe(400);
      expect(r.body).toMatch(/(From|To) &quot;.*&quot; is not a date/);
    },
  );

  it.each([['/cycles/a%00b'], ['/endpoints/x%00'], ['/login?next=/%00'], ['/agent/v1/jobs/j%00/result']])(
    'a NUL byte in %s is a 400',
    async (path) => {
      const r = await unchanged(() => http(path, { cookie: s.session.cookie }));
      expect(r.status).toBe(400);
      expect(r.body).toContain('the URL contains a NUL byte');
    },
  );

  it('a NUL byte in an agent field is a 400 and enrols nothing', async () => {
    const r = await unchanged(() =>
      http('/agent/v1/enroll', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          enrollSecret: 'fuzz-enrol-secret-0123456789',
          machineId: 'nul-machine-01',
          hostname: 'evil\u0000host',
          osFamily: 'linux',
        }),
      }),
    );
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({
      error: 'INVALID_INPUT',
      message: expect.stringContaining('body.hostname contains a NUL byte'),
    });
  });

  it('releasedAt "not-a-date" in a scan result is a 400 and stores nothing', async () => {
    const id = dispatchJobId(`scan:fuzz:${randomUUID()}`, null, s.agentId, 'scan');
    await s.db.db.insert(agentJobs).values({ id, endpointId: s.agentId, kind: 'scan', payload: { patchIds: [] } });
    const polled = await http('/agent/v1/jobs?wait=0', { headers: { authorization: s.agentAuth } });
    expect(polled.status).toBe(200);
    const found = {
      patchId: 'DSA-9999-1',
      title: 'openssl',
      vendor: 'Debian',
      type: 'security',
      releasedAt: 'not-a-date',
    };
    const r = await unchanged(() =>
      http(`/agent/v1/jobs/${encodeURIComponent(id)}/result`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: s.agentAuth },
        body: JSON.stringify({ status: 'succeeded', missing: [found], patches: [] }),
      }),
    );
    expect(r.status, r.body).toBe(400);
    expect(r.body).toContain('releasedAt');
    expect(r.body).not.toMatch(LEAKS);
  });

  it('malformed JSON is a 400 on every JSON route', async () => {
    for (const path of ['/agent/v1/enroll', '/api/messages', '/webhooks/servicenow']) {
      const r = await unchanged(() =>
        http(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' }),
      );
      expect(r.status, path).toBe(400);
      expect(r.body).not.toMatch(LEAKS);
    }
  });

  it.each([
    ['JSON null', 'null'],
    ['a JSON array', '[]'],
    ['an interaction that names no workspace', '{"type":"block_suggestion","name":"x","value":"y"}'],
    ['a view_submission without its view', '{"type":"view_submission","team":{"id":"T1"}}'],
  ])('a Slack-signed request with %s is a 400 (Bolt is not reached)', async (_what, body) => {
    const ts = Math.floor(Date.now() / 1000);
    const signature = `v0=${createHmac('sha256', FUZZ_SLACK_SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
    const r = await unchanged(() =>
      http('/slack/events', {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-slack-request-timestamp': String(ts),
          'x-slack-signature': signature,
        },
        body,
      }),
    );
    expect(r.status, r.body).toBe(400);
  });

  it('an exception form with an impossible date goes back with a message, adding nothing', async () => {
    const form = new URLSearchParams({
      _csrf: s.session.csrf,
      patchId: 'KB1',
      reason: 'r',
      expiresAt: '2026-99-99',
    }).toString();
    const r = await unchanged(() =>
      http('/exceptions', {
        method: 'POST',
        cookie: s.session.cookie,
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: s.url },
        body: form,
      }),
    );
    expect(r.status).toBe(303);
    expect(new URL(r.headers.get('location') ?? '', s.url).searchParams.get('error')).toMatch(
      /^The expiry .* is not a date/,
    );
  });
});

describe('the one error handler', () => {
  it('answers an unexpected database failure with a 500 that carries no SQL, parameters or stack', async () => {
    const app = await buildServer({
      logger: createLogger('silent'),
      health: [],
      routes: [
        (a) => {
          a.get('/boom', async () =>
            s.db.db.execute(sql`select * from no_such_table where secret = ${'hunter2-param'}`),
          );
        },
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      for (const accept of ['application/json', 'text/html']) {
        const res = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/boom`, {
          headers: { accept },
        });
        const body = await res.text();
        expect(res.status).toBe(500);
        expect(body).toContain('it is logged');
        expect(body).not.toContain('hunter2-param');
        expect(body).not.toContain('no_such_table');
        expect(body).not.toMatch(LEAKS);
      }
    } finally {
      await app.close();
    }
  });
});
