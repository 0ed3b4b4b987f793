import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Agent } from './agent';
import { checkServerUrl, GatewayClient, isLoopbackHost, withoutNul } from './client';

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
    const make = (insecureHttp?: boolean) => new Agent({ serverUrl: 'http://patchops.lan:3000', insecureHttp, enrollSecret: 's'.repeat(20), stateDir, log: pino({ level: 'silent' }), fetchImpl });
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
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jobs: [], distributionPoints: [] }));
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const redirector = http.createServer((req, res) => res.writeHead(307, { location: `http://127.0.0.1:${(target.address() as AddressInfo).port}${req.url}` }).end());
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
    const report = { status: 'succeeded', error: 'bad\u0000name', missing: [{ title: 'a\u0000b', cves: ['CVE-1\u0000'] }], n: 3 };
    const sent = JSON.stringify(report, withoutNul);
    expect(sent).not.toContain('\\u0000');
    expect(JSON.parse(sent)).toEqual({ status: 'succeeded', error: 'badname', missing: [{ title: 'ab', cves: ['CVE-1'] }], n: 3 });
  });
});
