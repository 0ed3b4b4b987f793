import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Agent } from './agent';
import {
  answerTimeout,
  checkServerUrl,
  GatewayClient,
  GatewayHttpError,
  isLoopbackHost,
  isRetryable,
  parseRetryAfter,
  retryDelayMs,
  withoutNul,
} from './client';

describe('checkServerUrl', () => {
  it.each([
    ['https://patchops.example.com', {}, 'ok'],
    ['https://10.0.0.5:8443/', {}, 'ok'],
    ['http://patchops.example.com', {}, /plain http.*--insecure-http/],
    ['http://10.0.0.5:3000', {}, /plain http/],
    ['http://patchops.example.com', { insecureHttp: true }, 'ok'],
    ['http://127.0.0.1:3000', {}, 'ok'],
    ['http://127.9.8.7:3000', {}, 'ok'],
    ['http://[::1]:3000', {}, 'ok'],
    ['http://localhost:3000', {}, 'ok'],
    ['http://127.0.0.1.evil.example:3000', {}, /plain http/],
    ['http://localhost.evil.example', {}, /plain http/],
    ['ftp://patchops.example.com', { insecureHttp: true }, /not http\(s\)/],
    ['patchops.example.com', {}, /not a URL/],
  ] as const)('%s %o → %s', (url, o, expected) => {
    let got = 'ok';
    try {
      checkServerUrl(url, o);
    } catch (e) {
      got = (e as Error).message;
    }
    if (expected === 'ok') expect(got).toBe('ok');
    else expect(got).toMatch(expected);
  });

  it('knows loopback hosts', () => {
    expect(['127.0.0.1', '[::1]', 'LOCALHOST'].map(isLoopbackHost)).toEqual([true, true, true]);
    expect(['10.0.0.1', '::2', 'example.com', '0.0.0.0'].map(isLoopbackHost)).toEqual([false, false, false, false]);
  });
});

describe('the agent and a plain-http server', () => {
  it('refuses to be built for one on the network, so nothing is sent or written', async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'po-http-'));
    const stateDir = path.join(tmp, 'state');
    let calls = 0;
    const fetchImpl = (async () => {
      calls++;
      return new Response('{}');
    }) as typeof fetch;
    const make = (insecureHttp?: boolean) =>
      new Agent({
        serverUrl: 'http://patchops.lan:3000',
        insecureHttp,
        enrollSecret: 's'.repeat(20),
        stateDir,
        log: pino({ level: 'silent' }),
        fetchImpl,
      });
    expect(() => make()).toThrow(/plain http/);
    expect(calls).toBe(0);
    await expect(fs.access(stateDir)).rejects.toThrow();
    expect(() => make(true)).not.toThrow();
    await fs.rm(tmp, { recursive: true, force: true });
  });
});

describe('the gateway client and redirects', () => {
  it('follows none: a redirect (say from https to a plain-http address) fails the call and the target hears nothing', async () => {
    const hits: string[] = [];
    const target = http.createServer((req, res) => {
      hits.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ jobs: [], distributionPoints: [] }));
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const redirector = http.createServer((req, res) =>
      res.writeHead(307, { location: `http://127.0.0.1:${(target.address() as AddressInfo).port}${req.url}` }).end(),
    );
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    try {
      const client = new GatewayClient(`http://127.0.0.1:${(redirector.address() as AddressInfo).port}`);
      client.nodeKey = 'node-key';
      await expect(client.poll(0)).rejects.toThrow(/GET \/agent\/v1\/jobs\?wait=0: fetch failed: .*redirect/);
      expect(hits).toEqual([]);
    } finally {
      target.close();
      redirector.close();
    }
  });
});

describe('withoutNul', () => {
  it('takes NUL bytes out of every string of a report, at any depth, and leaves the rest as it is', () => {
    const report = {
      status: 'succeeded',
      error: 'bad\u0000name',
      missing: [{ title: 'a\u0000b', cves: ['CVE-1\u0000'] }],
      n: 3,
    };
    const sent = JSON.stringify(report, withoutNul);
    expect(sent).not.toContain('\\u0000');
    expect(JSON.parse(sent)).toEqual({
      status: 'succeeded',
      error: 'badname',
      missing: [{ title: 'ab', cves: ['CVE-1'] }],
      n: 3,
    });
  });
});

describe('Retry-After', () => {
  it.each([
    ['5', 5000],
    ['0', 0],
    [' 12 ', 12_000],
    ['Wed, 21 Oct 2015 07:28:10 GMT', 10_000], // 10 s after "now" below
    ['Wed, 21 Oct 2015 07:27:00 GMT', 0], // in the past
    ['soon', undefined],
    [null, undefined],
  ])('parses %j as %s ms', (value, expected) => {
    expect(parseRetryAfter(value, Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(expected);
  });

  it('waits at least the Retry-After, plus up to half of it as jitter; else backs off', () => {
    const busy = new GatewayHttpError(503, 'OVERLOADED', 'busy', 4000);
    expect(retryDelayMs(busy, 9, 1000, 60_000, () => 0)).toBe(4000);
    expect(retryDelayMs(busy, 9, 1000, 60_000, () => 0.999)).toBe(5998);
    expect(retryDelayMs(new Error('fetch failed'), 3, 1000, 60_000, () => 0.5)).toBe(4000);
  });

  it.each([
    [new GatewayHttpError(503, 'OVERLOADED', 'busy', 1000), true],
    [new GatewayHttpError(500, 'INTERNAL', 'bug'), true],
    [new GatewayHttpError(429, 'TOO_MANY_POLLS', 'slow down', 5000), true],
    [new GatewayHttpError(409, 'CONFLICT', 'no'), false],
    [new Error('fetch failed'), true],
  ])('retryable: %s → %s', (e, expected) => {
    expect(isRetryable(e)).toBe(expected);
  });

  it('a 503 with Retry-After reaches the caller as retryAfterMs; a poll answered at once carries its hint', async () => {
    const server = http.createServer((req, res) => {
      if (req.url?.startsWith('/agent/v1/jobs?')) {
        res
          .writeHead(200, { 'content-type': 'application/json', 'retry-after': '7' })
          .end(JSON.stringify({ jobs: [], distributionPoints: [] }));
      } else
        res
          .writeHead(503, { 'content-type': 'application/json', 'retry-after': '3' })
          .end(JSON.stringify({ error: 'OVERLOADED', message: 'busy' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const c = new GatewayClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      await expect(c.result('j1', { status: 'succeeded', patches: [], rebootPending: false })).rejects.toMatchObject({
        status: 503,
        code: 'OVERLOADED',
        retryAfterMs: 3000,
      });
      expect((await c.poll(30)).retryAfterMs).toBe(7000);
    } finally {
      server.close();
    }
  });
});

/** Writes a JSON answer, as a gateway does. */
const jsonAnswer =
  (res: http.ServerResponse) =>
  (status: number, value: unknown, headers: Record<string, string> = {}) =>
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));

/** A stand-in gateway's answers to an agent's enrolment and inventory; true when `url` was one of them. */
function answeredEnrolmentOrInventory(url: string | undefined, json: ReturnType<typeof jsonAnswer>): boolean {
  if (url === '/agent/v1/enroll')
    json(200, {
      endpointId: 'ep-1',
      nodeKey: 'node-key-1',
      manifestSigningKey: 'unused',
      protocolVersion: 1,
      pollIntervalSeconds: 1,
    });
  else if (url === '/agent/v1/inventory') json(200, { ok: true, software: 0 });
  else return false;
  return true;
}

describe('the agent under a busy gateway', () => {
  it('keeps a result that got 503 and sends it again after Retry-After, never dropping it', async () => {
    const results: number[] = [];
    let jobHandedOut = false;
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const json = jsonAnswer(res);
        if (answeredEnrolmentOrInventory(req.url, json)) return;
        if (req.url?.startsWith('/agent/v1/jobs?')) {
          const jobs = jobHandedOut
            ? []
            : [
                {
                  id: 'scan-1',
                  kind: 'scan',
                  payload: {},
                  deadline: null,
                  leaseExpiresAt: new Date(Date.now() + 600_000).toISOString(),
                },
              ];
          jobHandedOut = true;
          return json(200, { jobs, distributionPoints: [] });
        }
        if (req.url === '/agent/v1/jobs/scan-1/result') {
          results.push(Date.now());
          // The first two tries find the server busy.
          if (results.length <= 2) return json(503, { error: 'OVERLOADED', message: 'busy' }, { 'retry-after': '1' });
          return json(200, { ok: true, outcome: 'recorded' });
        }
        return json(404, { error: 'NOT_FOUND', message: req.url });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-agent-busy-'));
    const ac = new AbortController();
    try {
      const backend = {
        name: 'apt',
        scan: async () => [],
        install: async () => ({ ok: true, log: '' }),
        rollback: async () => ({ ok: true, log: '' }),
        installedVersions: async () => new Map<string, string | null>(),
        inventory: async () => [],
      };
      const done: string[] = [];
      const agent = new Agent({
        serverUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        enrollSecret: 's'.repeat(20),
        stateDir,
        log: pino({ level: 'silent' }),
        platform: {
          osFamily: 'linux',
          osName: 'Debian GNU/Linux',
          osVersion: '12',
          arch: 'x64',
          hostname: 'busy',
          machineId: 'machine-busy-1',
        },
        backends: new Map([['apt', backend]]),
        waitSeconds: 1,
        signal: ac.signal,
        onJobDone: (job) => done.push(job.id),
      });
      await agent.start();
      await agent.pollOnce(1);
      expect(done).toEqual(['scan-1']);
      expect(results).toHaveLength(3);
      // Each retry waited the Retry-After (1 s) at least, and at most half of it again.
      for (const gap of [results[1]! - results[0]!, results[2]! - results[1]!]) {
        expect(gap).toBeGreaterThanOrEqual(950);
        expect(gap).toBeLessThan(2500);
      }
    } finally {
      ac.abort();
      server.close();
      await fs.rm(stateDir, { recursive: true, force: true });
    }
  }, 20_000);
});

describe('answerTimeout', () => {
  /** A server that answers at once and then stalls this whole process (client too) past the client's time-out. */
  async function stallingServer(stallMs: number) {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jobs":[{"id":"job-1"}]}');
      const until = Date.now() + stallMs;
      while (Date.now() < until); // the machine is busy: no timer, no socket read, nothing runs
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
  }

  it('keeps an answer that arrived in time when the process stalled past the time-out before reading it', async () => {
    const { server, url } = await stallingServer(300);
    try {
      const timeout = answerTimeout(100);
      const res = await fetch(url, { signal: timeout.signal });
      timeout.restart();
      expect(await res.json()).toEqual({ jobs: [{ id: 'job-1' }] });
      timeout.clear();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('aborts a call that gets no answer', async () => {
    const server = http.createServer(() => undefined); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const timeout = answerTimeout(100);
      const t0 = Date.now();
      const err = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, {
        signal: timeout.signal,
      }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe('TimeoutError');
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('a poll that got no answer', () => {
  it('makes the next polls say so (lost=1) until an answer says the server looked (lostChecked)', async () => {
    const polls: string[] = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const json = jsonAnswer(res);
        if (answeredEnrolmentOrInventory(req.url, json)) return;
        if (req.url?.startsWith('/agent/v1/jobs?')) {
          polls.push(req.url);
          // 1st poll: the connection drops (no answer); 2nd: answered before the server looked; 3rd: 503; 4th: the
          // server looked (lostChecked).
          if (polls.length === 1) return req.socket.destroy();
          if (polls.length === 3) return json(503, { error: 'OVERLOADED', message: 'busy' }, { 'retry-after': '1' });
          return json(200, { jobs: [], distributionPoints: [], ...(polls.length === 4 ? { lostChecked: true } : {}) });
        }
        return json(404, { error: 'NOT_FOUND', message: req.url });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-agent-lost-'));
    try {
      const agent = new Agent({
        serverUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        enrollSecret: 's'.repeat(20),
        stateDir,
        log: pino({ level: 'silent' }),
        platform: {
          osFamily: 'linux',
          osName: 'Debian GNU/Linux',
          osVersion: '12',
          arch: 'x64',
          hostname: 'lost',
          machineId: 'machine-lost-1',
        },
        backends: new Map(),
        waitSeconds: 0,
      });
      await agent.start();
      await expect(agent.pollOnce(0)).rejects.toThrow(); // no answer
      await agent.pollOnce(0); // says lost=1; the answer does not say the server looked
      await expect(agent.pollOnce(0)).rejects.toThrow(/503/); // says it again; an HTTP answer, but not that one
      await agent.pollOnce(0); // says it again; now the server looked
      await agent.pollOnce(0); // no longer
      expect(polls).toEqual([
        '/agent/v1/jobs?wait=0',
        '/agent/v1/jobs?wait=0&lost=1',
        '/agent/v1/jobs?wait=0&lost=1',
        '/agent/v1/jobs?wait=0&lost=1',
        '/agent/v1/jobs?wait=0',
      ]);
    } finally {
      server.closeAllConnections();
      server.close();
      await fs.rm(stateDir, { recursive: true, force: true });
    }
  });
});
