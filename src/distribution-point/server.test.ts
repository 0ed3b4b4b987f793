import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WhoamiResponse } from '../shared/agent-protocol';
import { signDownloadToken } from '../shared/download-token';
import { startDistributionPoint, type DistributionPointOptions, type RunningDistributionPoint } from './server';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const good = Buffer.from('installer bytes v1.2.3');
const goodSha = sha(good);
const liedSha = 'b'.repeat(64);
const DP_TOKEN = 'dp-token-branch-1';
const DP2_TOKEN = 'dp-token-branch-1-downstream';

const keyPair = () =>
  generateKeyPairSync('ed25519', {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
/** The manifest-signing key of the fake central server: download tokens are signed with it. */
let serverKey = keyPair();
const attacker = keyPair();
const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s;
const tokenFor = (o: { sub?: string; site?: string; exp?: number } = {}, privateKey = serverKey.privateKey) =>
  signDownloadToken({ sub: 'ep-a', site: 'branch-1', exp: inSeconds(900), ...o }, privateKey);
/** A properly signed token with a payload of our choosing (to reach the checks after the signature). */
const signedPayload = (payload: unknown) => {
  const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
  return `v1.${p}.${sign(null, Buffer.from(`patchops-download-token-v1\n${p}`), serverKey.privateKey).toString('base64url')}`;
};

// A fake upstream speaking the gateway's contract: whoami for node keys and point tokens (with the download-token
// key for points), files for either.
const who = new Map<string, WhoamiResponse>([
  ['key-a', { kind: 'agent', endpointId: 'ep-a', site: 'branch-1' }],
  [DP_TOKEN, { kind: 'distribution-point', name: 'dp1', site: 'branch-1' }],
  [DP2_TOKEN, { kind: 'distribution-point', name: 'dp2', site: 'branch-1' }],
]);
/** Every Authorization header the upstream saw. */
const upstreamSaw: string[] = [];
const files = new Map<string, Buffer>([[goodSha, good]]);
let upstream: http.Server;
let upstreamUrl: string;
let fileHits = 0;
let whoamiHits = 0;
let upstreamDown = false;

const bearer = (req: http.IncomingMessage) => /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (upstreamDown) return res.writeHead(503).end();
    upstreamSaw.push(req.headers.authorization ?? '');
    const caller = who.get(bearer(req));
    if (req.url === '/agent/v1/whoami') {
      whoamiHits += 1;
      const answer = caller?.kind === 'distribution-point' ? { ...caller, tokenKey: serverKey.publicKey } : caller;
      return answer
        ? res.end(JSON.stringify(answer))
        : res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"UNAUTHORIZED","message":"no"}');
    }
    if (!caller) return res.writeHead(401).end();
    const m = /^\/agent\/v1\/files\/([0-9a-f]{64})$/.exec(req.url ?? '');
    if (!m) return res.writeHead(404).end();
    fileHits += 1;
    if (m[1] === liedSha) return res.end(Buffer.from('not what the hash says'));
    const bytes = files.get(m[1]!);
    return bytes ? res.end(bytes) : res.writeHead(404).end();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});
afterAll(() => {
  upstream?.close();
});

const running: RunningDistributionPoint[] = [];
afterEach(async () => {
  upstreamDown = false;
  while (running.length) await running.pop()!.close();
});

async function start(
  o: Partial<DistributionPointOptions> = {},
): Promise<{ dp: RunningDistributionPoint; cacheDir: string }> {
  const cacheDir = o.cacheDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'po-dp-')));
  const dp = await startDistributionPoint({
    upstream: upstreamUrl,
    token: DP_TOKEN,
    cacheDir,
    host: '127.0.0.1',
    port: 0,
    log: pino({ level: 'silent' }),
    ...o,
  });
  running.push(dp);
  return { dp, cacheDir };
}

const get = (dp: RunningDistributionPoint, hash: string, key: string | null = tokenFor()) =>
  fetch(`${dp.url}/agent/v1/files/${hash}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });

describe('distribution point: filling and serving', () => {
  it('fills on demand with its own token, verifies the hash, then serves from its cache', async () => {
    const { dp, cacheDir } = await start();
    fileHits = 0;
    const [a, b] = await Promise.all([get(dp, goodSha), get(dp, goodSha)]);
    expect(Buffer.from(await a.arrayBuffer())).toEqual(good);
    expect(Buffer.from(await b.arrayBuffer())).toEqual(good);
    expect(fileHits).toBe(1); // concurrent misses share one upstream fetch
    const c = await get(dp, goodSha);
    expect(Buffer.from(await c.arrayBuffer())).toEqual(good);
    expect(fileHits).toBe(1);
    expect(dp.stats.hits).toBeGreaterThanOrEqual(1);
    expect(await fs.readFile(path.join(cacheDir, goodSha))).toEqual(good);
    const health = (await (await fetch(`${dp.url}/healthz`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({
      status: 'ok',
      name: 'dp1',
      site: 'branch-1',
      cacheBytes: good.length,
      cacheFiles: 1,
    });
  });

  it('refuses and does not cache bytes that do not match their name', async () => {
    const { dp, cacheDir } = await start();
    const r = await get(dp, liedSha);
    expect(r.status).toBe(502);
    expect(((await r.json()) as { message: string }).message).toMatch(/not cached/);
    expect(await fs.readdir(cacheDir)).toEqual([]);
    expect(dp.stats.rejected).toBe(1);
    expect(dp.cache()).toEqual({ bytes: 0, files: 0 });
  });

  it('passes a 404 through and refuses other paths', async () => {
    const { dp } = await start();
    expect((await get(dp, 'c'.repeat(64))).status).toBe(404);
    expect((await get(dp, '../../etc/passwd')).status).toBe(404);
  });

  it('will not start with a token the upstream refuses', async () => {
    await expect(start({ token: 'not-a-registered-token' })).rejects.toThrow(/register it again/);
  });
});

describe('distribution point: who may fetch', () => {
  it.each<[string, number, () => string | null, RegExp | null]>([
    ['no credentials', 401, () => null, /missing credentials/],
    ['an unknown key', 401, () => 'forged-key', /unknown or revoked/],
    ["an agent's node key (never taken, even one the upstream knows)", 401, () => 'key-a', /do not take node keys/],
    ['a token of another site', 403, () => tokenFor({ site: 'branch-2' }), /serves site branch-1.*central server/],
    ['an expired token', 401, () => tokenFor({ exp: inSeconds(-61) }), /expired/],
    [
      'a token with a tampered payload',
      401,
      () =>
        tokenFor().replace(
          /\.[^.]+\./,
          `.${Buffer.from(JSON.stringify({ sub: 'ep-x', site: 'branch-1', exp: inSeconds(900), aud: 'distribution-point' })).toString('base64url')}.`,
        ),
      /signature/,
    ],
    ['a token signed by another key', 401, () => tokenFor({}, attacker.privateKey), /signature/],
    [
      'a token for another audience',
      401,
      () => signedPayload({ sub: 'ep-a', site: 'branch-1', exp: inSeconds(900), aud: 'central' }),
      /"central"/,
    ],
    ['a token of its site', 200, () => tokenFor(), null],
    ['a token expired less than the 60 s clock skew ago', 200, () => tokenFor({ exp: inSeconds(-30) }), null],
    ['a downstream distribution point', 200, () => DP2_TOKEN, null],
  ])('%s → %i', async (_name, status, key, message) => {
    const { dp } = await start();
    const r = await get(dp, goodSha, key());
    expect(r.status).toBe(status);
    if (message)
      expect(await r.json()).toMatchObject({ error: expect.any(String), message: expect.stringMatching(message) });
  });

  it('checks download tokens offline: nothing but its own token goes upstream', async () => {
    const { dp } = await start();
    upstreamSaw.length = 0;
    for (const t of [
      tokenFor(),
      tokenFor({ sub: 'ep-b' }),
      tokenFor({ site: 'branch-2' }),
      tokenFor({}, attacker.privateKey),
    ])
      await (await get(dp, goodSha, t)).arrayBuffer();
    expect(upstreamSaw.length).toBeGreaterThan(0); // the fill
    expect(new Set(upstreamSaw)).toEqual(new Set([`Bearer ${DP_TOKEN}`]));
  });

  it('checks expiry against its clock (injected now)', async () => {
    let clock = new Date();
    const { dp } = await start({ now: () => clock });
    const t = tokenFor({ exp: inSeconds(900) });
    expect((await get(dp, goodSha, t)).status).toBe(200);
    clock = new Date(Date.now() + 960_000 + 1000); // past exp + 60 s
    expect((await get(dp, goodSha, t)).status).toBe(401);
  });

  it('serves tokens of every site with anySite', async () => {
    const { dp } = await start({ anySite: true });
    expect((await get(dp, goodSha, tokenFor({ site: 'branch-2' }))).status).toBe(200);
  });

  it('picks up a rotated key at the next key refresh', async () => {
    const { dp } = await start({ keyRefreshMs: 100 });
    const before = serverKey;
    try {
      serverKey = keyPair();
      await expect
        .poll(async () => (await get(dp, goodSha, tokenFor())).status, { timeout: 3000, interval: 50 })
        .toBe(200);
      expect((await get(dp, goodSha, tokenFor({}, before.privateKey))).status).toBe(401);
    } finally {
      serverKey = before;
    }
  });

  it('refuses to start when the upstream gives no download-token key', async () => {
    const before = serverKey.publicKey;
    try {
      serverKey = { ...serverKey, publicKey: 'not a key' };
      await expect(start()).rejects.toThrow(/download-token key/);
    } finally {
      serverKey = { ...serverKey, publicKey: before };
    }
  });

  it('remembers the answers for a downstream point: a revoked point token is refused once the TTL has passed', async () => {
    const { dp } = await start({ authTtlMs: 300 });
    who.set('dp-soon-revoked', { kind: 'distribution-point', name: 'dp-r', site: 'branch-1' });
    expect((await get(dp, goodSha, 'dp-soon-revoked')).status).toBe(200);
    const asked = whoamiHits;
    expect((await get(dp, goodSha, 'dp-soon-revoked')).status).toBe(200);
    expect(whoamiHits).toBe(asked); // answered from the cache
    who.delete('dp-soon-revoked');
    await new Promise((r) => setTimeout(r, 350));
    expect((await get(dp, goodSha, 'dp-soon-revoked')).status).toBe(401);
    expect((await get(dp, goodSha, 'dp-soon-revoked')).status).toBe(401);
    expect(whoamiHits).toBe(asked + 1); // the no is remembered too
  });

  it('while the upstream is down, agents with tokens are served and an earlier yes for a point still counts; an unknown point token gets 503', async () => {
    const { dp } = await start({ authTtlMs: 1 });
    expect((await get(dp, goodSha, DP2_TOKEN)).status).toBe(200);
    upstreamDown = true;
    await new Promise((r) => setTimeout(r, 10));
    expect((await get(dp, goodSha, DP2_TOKEN)).status).toBe(200);
    expect((await get(dp, goodSha, tokenFor())).status).toBe(200);
    expect((await get(dp, goodSha, 'never-seen')).status).toBe(503);
  });

  it('keeps the key it has while the upstream is away, but stops serving once the upstream refuses its own token', async () => {
    const { dp } = await start({ keyRefreshMs: 50 });
    await (await get(dp, goodSha)).arrayBuffer(); // cached: the file needs no upstream
    upstreamDown = true;
    await new Promise((r) => setTimeout(r, 120)); // the key is due again, and cannot be had
    expect((await get(dp, goodSha)).status).toBe(200);
    upstreamDown = false;
    who.set('dp-token-replaced', { kind: 'distribution-point', name: 'dp3', site: 'branch-1' });
    const { dp: replaced } = await start({ token: 'dp-token-replaced', keyRefreshMs: 50 });
    expect((await get(replaced, goodSha)).status).toBe(200);
    who.delete('dp-token-replaced'); // registered again elsewhere: this token is dead
    await expect.poll(async () => (await get(replaced, goodSha)).status, { timeout: 3000, interval: 50 }).toBe(502);
  });

  it('a point behind a point gets the key passed on and verifies tokens itself', async () => {
    const { dp: first } = await start();
    const whoami = await fetch(`${first.url}/agent/v1/whoami`, { headers: { authorization: `Bearer ${DP2_TOKEN}` } });
    expect(await whoami.json()).toEqual({
      kind: 'distribution-point',
      name: 'dp2',
      site: 'branch-1',
      tokenKey: serverKey.publicKey,
    });
    const { dp: second } = await start({ upstream: first.url, token: DP2_TOKEN });
    const r = await get(second, goodSha);
    expect(r.status).toBe(200);
    expect(Buffer.from(await r.arrayBuffer())).toEqual(good);
    expect((await get(second, goodSha, tokenFor({ site: 'branch-2' }))).status).toBe(403);
    expect((await fetch(`${first.url}/agent/v1/whoami`, { headers: { authorization: 'Bearer key-a' } })).status).toBe(
      401,
    ); // node keys: no
    expect((await fetch(`${first.url}/agent/v1/whoami`, { headers: { authorization: 'Bearer nope' } })).status).toBe(
      401,
    );
  });
});

describe('distribution point: cache eviction', () => {
  const blob = (n: number) => {
    const b = randomBytes(n);
    files.set(sha(b), b);
    return { b, h: sha(b) };
  };
  const pause = (ms = 30) => new Promise((r) => setTimeout(r, ms));

  it('keeps the cache under its limit by deleting the least recently used files, and rebuilds that order at start', async () => {
    const [a, b, c] = [blob(1000), blob(1000), blob(1000)];
    const { dp, cacheDir } = await start({ maxCacheBytes: 2500 });
    for (const h of [a.h, b.h, a.h, c.h]) {
      const r = await get(dp, h);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
      await pause();
    }
    // a was used after b: b goes first.
    expect((await fs.readdir(cacheDir)).sort()).toEqual([a.h, c.h].sort());
    expect(dp.cache()).toEqual({ bytes: 2000, files: 2 });
    expect(dp.stats.evicted).toBe(1);
    const health = (await (await fetch(`${dp.url}/healthz`)).json()) as Record<string, number>;
    expect(health).toMatchObject({ cacheBytes: 2000, cacheFiles: 2, evicted: 1 });
    await running.pop()!.close();

    // After a restart with a lower limit, the oldest by use (a, touched before c was filled) goes.
    const again = await start({ cacheDir, maxCacheBytes: 1500 });
    expect(await fs.readdir(cacheDir)).toEqual([c.h]);
    expect(again.dp.cache()).toEqual({ bytes: 1000, files: 1 });
    const r = await get(again.dp, c.h);
    expect(Buffer.from(await r.arrayBuffer())).toEqual(c.b);
    expect(again.dp.stats.hits).toBe(1);
  });

  it('never deletes a file while it is being served', async () => {
    const [big, next, small] = [blob(4 * 1024 * 1024), blob(4 * 1024 * 1024), blob(10)];
    const { dp, cacheDir } = await start({ maxCacheBytes: 6 * 1024 * 1024 });
    const slow = await get(dp, big.h); // headers in, body not read: the stream stays open
    expect(slow.status).toBe(200);
    const r2 = await get(dp, next.h);
    await r2.arrayBuffer();
    expect((await fs.readdir(cacheDir)).sort()).toEqual([big.h, next.h].sort()); // over the limit, but big is in use
    expect(dp.stats.evicted).toBe(0);
    expect(sha(Buffer.from(await slow.arrayBuffer()))).toBe(big.h);
    await pause(50);
    const r3 = await get(dp, small.h);
    await r3.arrayBuffer();
    expect((await fs.readdir(cacheDir)).sort()).toEqual([next.h, small.h].sort());
    expect(dp.cache().bytes).toBeLessThanOrEqual(6 * 1024 * 1024);
  });
});
