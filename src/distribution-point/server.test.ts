import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDistributionPoint, type RunningDistributionPoint } from './server';

const good = Buffer.from('installer bytes v1.2.3');
const goodSha = createHash('sha256').update(good).digest('hex');
const liedSha = 'b'.repeat(64);
let upstream: http.Server;
let upstreamHits = 0;
let dp: RunningDistributionPoint;
let cacheDir: string;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    upstreamHits += 1;
    if (req.url === `/agent/v1/files/${goodSha}`) return res.end(good);
    if (req.url === `/agent/v1/files/${liedSha}`) return res.end(Buffer.from('not what the hash says'));
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'po-dp-'));
  dp = await startDistributionPoint({ upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, cacheDir, host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }) });
});
afterAll(async () => {
  await dp?.close();
  upstream?.close();
});

describe('distribution point', () => {
  it('fills on demand, verifies the hash, then serves from its cache', async () => {
    const [a, b] = await Promise.all([fetch(`${dp.url}/agent/v1/files/${goodSha}`), fetch(`${dp.url}/agent/v1/files/${goodSha}`)]);
    expect(Buffer.from(await a.arrayBuffer())).toEqual(good);
    expect(Buffer.from(await b.arrayBuffer())).toEqual(good);
    expect(upstreamHits).toBe(1); // concurrent misses share one upstream fetch
    const c = await fetch(`${dp.url}/agent/v1/files/${goodSha}`);
    expect(Buffer.from(await c.arrayBuffer())).toEqual(good);
    expect(upstreamHits).toBe(1);
    expect(dp.stats.hits).toBeGreaterThanOrEqual(1);
    expect(await fs.readFile(path.join(cacheDir, goodSha))).toEqual(good);
  });

  it('refuses and does not cache bytes that do not match their name', async () => {
    const r = await fetch(`${dp.url}/agent/v1/files/${liedSha}`);
    expect(r.status).toBe(502);
    expect(((await r.json()) as { message: string }).message).toMatch(/not cached/);
    await expect(fs.stat(path.join(cacheDir, liedSha))).rejects.toThrow();
    expect(dp.stats.rejected).toBe(1);
  });

  it('passes a 404 through and refuses other paths', async () => {
    expect((await fetch(`${dp.url}/agent/v1/files/${'c'.repeat(64)}`)).status).toBe(404);
    expect((await fetch(`${dp.url}/agent/v1/files/../../etc/passwd`)).status).toBe(404);
  });
});
