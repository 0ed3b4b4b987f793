/**
 * `patchops distribution-point`: a site cache of the central repository's files. Files are named by their
 * sha256; a miss is fetched from the upstream (the central server or another point), its hash checked while it
 * streams to disk, then stored and served. Concurrent misses for one file share one upstream fetch. Agents still
 * verify every file against the signed manifest: a distribution point is trusted for the bytes of nothing.
 *
 * Authentication: the point authenticates to its upstream with its own token (`Authorization: Bearer <token>`,
 * from `patchops distribution-point-register`). Its upstream's `GET /agent/v1/whoami` tells it its name, its site and
 * `tokenKey`, the public key agents' download tokens are signed with (asked at start and every `keyRefreshMs`, 5 min,
 * for key rotation; a point behind another point gets it passed on by that point).
 *
 * Agents send the short-lived download token of their last poll (src/shared/download-token.ts), never their node key:
 * the point checks it offline (signature, audience, expiry with 60 s of clock skew, and the site: agents of another
 * site get 403 unless the point serves any site, `anySite`). A node key is refused (401). A revoked agent can fetch
 * until its token expires (at most 15 min).
 *
 * Downstream points send their own token; the point asks its upstream's whoami who that is, and remembers a yes for
 * `authTtlMs` (60 s) and a no for `authNegativeTtlMs` (5 s). While the upstream is unreachable (network error or 5xx),
 * a yes older than the TTL but younger than `staleAuthMs` (an hour) still counts; a token never seen is refused with
 * 503. Downstream points are served whatever their site.
 *
 * Cache eviction: an in-memory LRU index (rebuilt at start from the directory, oldest modification time first;
 * a hit moves the file to the young end and touches its mtime so the order survives a restart). After a fill,
 * while the cache is above `maxCacheBytes`, the least recently used files are deleted, except files being served
 * (counted while their stream is open; on Linux an open stream would survive the unlink anyway, on Windows it
 * would not) and the file just filled.
 */
import { createHash, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import type { Logger } from 'pino';
import { whoamiResponseSchema, type WhoamiResponse } from '../shared/agent-protocol';
import { DownloadTokenError, verifyDownloadToken } from '../shared/download-token';

export interface DistributionPointOptions {
  /** The central server, or another distribution point. */
  upstream: string;
  /** This point's token (PATCHOPS_DP_TOKEN), sent upstream as `Authorization: Bearer <token>`. */
  token: string;
  cacheDir: string;
  host?: string;
  port?: number;
  log: Logger;
  fetchImpl?: typeof fetch;
  /** Cache limit in bytes (default 10 GiB): least recently used files go after a fill takes it over. */
  maxCacheBytes?: number;
  /** How often the download-token key (and this point's name and site) is asked of the upstream again (default 5 min). */
  keyRefreshMs?: number;
  /** The clock download tokens' expiry is checked against (tests). */
  now?: () => Date;
  /** How long the upstream's yes for a downstream point's token is trusted (default 60 s). */
  authTtlMs?: number;
  /** How long the upstream's no is remembered (default 5 s). */
  authNegativeTtlMs?: number;
  /** How long an old yes still counts while the upstream cannot be asked (default 1 h). */
  staleAuthMs?: number;
  /** Serve agents (download tokens) of every site, not only this point's own. */
  anySite?: boolean;
}

export interface DistributionPointStats {
  hits: number;
  misses: number;
  rejected: number;
  evicted: number;
  refused: number;
}

export interface RunningDistributionPoint {
  url: string;
  stats: DistributionPointStats;
  /** Bytes and files in the cache now. */
  cache(): { bytes: number; files: number };
  close(): Promise<void>;
}

const FILE_PATH = /^\/agent\/v1\/files\/([0-9a-f]{64})$/;
const CACHED_NAME = /^[0-9a-f]{64}$/;
export const DEFAULT_MAX_CACHE_MB = 10_240;

class DpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The upstream refused this point's own token: no earlier answer may stand in. */
    readonly ownTokenRefused = false,
  ) {
    super(message);
  }
}

/** This point as its upstream knows it, with the key download tokens verify with. */
interface Self {
  name: string;
  site: string;
  tokenKey: KeyObject;
  tokenKeyPem: string;
  /** When the upstream said so (Date.now()). */
  at: number;
}

interface AuthEntry {
  answer: WhoamiResponse | null;
  /** Until when the entry is trusted as it is. */
  until: number;
  /** When the upstream last said yes (for the stale window). */
  okAt: number;
}

export async function startDistributionPoint(o: DistributionPointOptions): Promise<RunningDistributionPoint> {
  await fs.mkdir(o.cacheDir, { recursive: true });
  const upstream = o.upstream.replace(/\/+$/, '');
  const f = o.fetchImpl ?? fetch;
  const maxBytes = o.maxCacheBytes ?? DEFAULT_MAX_CACHE_MB * 1024 * 1024;
  const authTtl = o.authTtlMs ?? 60_000;
  const negativeTtl = o.authNegativeTtlMs ?? 5_000;
  const staleAuth = o.staleAuthMs ?? 3600_000;
  const keyRefreshMs = o.keyRefreshMs ?? 5 * 60_000;
  const now = o.now ?? (() => new Date());
  const stats: DistributionPointStats = { hits: 0, misses: 0, rejected: 0, evicted: 0, refused: 0 };
  const fills = new Map<string, Promise<void>>();
  const auth = new Map<string, AuthEntry>(); // sha256(credential) → the upstream's answer
  const asking = new Map<string, Promise<WhoamiResponse>>();

  // ---------------------------------------------------------------- the LRU index

  const index = new Map<string, number>(); // sha256 → size, least recently used first
  const serving = new Map<string, number>(); // sha256 → open streams
  let cacheBytes = 0;
  const fileOf = (sha: string) => path.join(o.cacheDir, sha);

  const found: Array<{ sha: string; size: number; mtime: number }> = [];
  for (const name of await fs.readdir(o.cacheDir)) {
    if (name.endsWith('.tmp')) {
      await fs.rm(path.join(o.cacheDir, name), { force: true }); // a fill cut short by a stop
      continue;
    }
    if (!CACHED_NAME.test(name)) continue;
    const st = await fs.stat(fileOf(name)).catch(() => null);
    if (st?.isFile()) found.push({ sha: name, size: st.size, mtime: st.mtimeMs });
  }
  found.sort((a, b) => a.mtime - b.mtime);
  for (const e of found) {
    index.set(e.sha, e.size);
    cacheBytes += e.size;
  }

  const forget = (sha: string) => {
    const size = index.get(sha);
    if (size === undefined) return;
    index.delete(sha);
    cacheBytes -= size;
  };

  const touch = (sha: string) => {
    const size = index.get(sha);
    if (size === undefined) return;
    index.delete(sha);
    index.set(sha, size);
    const t = new Date();
    void fs.utimes(fileOf(sha), t, t).catch(() => undefined);
  };

  async function evict(keep?: string): Promise<void> {
    for (const [sha, size] of index) {
      if (cacheBytes <= maxBytes) return;
      if (sha === keep || (serving.get(sha) ?? 0) > 0) continue;
      forget(sha);
      stats.evicted += 1;
      await fs.rm(fileOf(sha), { force: true });
      o.log.info({ sha256: sha, size, cacheBytes }, 'distribution point: evicted');
    }
    if (cacheBytes > maxBytes)
      o.log.warn({ cacheBytes, maxBytes }, 'distribution point: cache over its limit; the rest is being served');
  }
  await evict();

  // ---------------------------------------------------------------- authentication

  const refusedCredentials = () =>
    new DpError(
      401,
      'UNAUTHORIZED',
      'unknown or revoked credentials: agents send the download token of their last poll; a distribution point its own token (register it again if it was replaced)',
    );
  const remember = (hash: string, entry: AuthEntry) => {
    if (auth.size > 50_000) auth.clear();
    auth.set(hash, entry);
  };

  async function askUpstream(credential: string): Promise<WhoamiResponse> {
    const hash = createHash('sha256').update(credential).digest('hex');
    const entry = auth.get(hash);
    const now = Date.now();
    if (entry && entry.until > now) {
      if (entry.answer) return entry.answer;
      throw refusedCredentials();
    }
    let p = asking.get(hash);
    if (!p) {
      p = (async () => {
        let res: Response;
        try {
          res = await f(`${upstream}/agent/v1/whoami`, {
            headers: { authorization: `Bearer ${credential}` },
            signal: AbortSignal.timeout(10_000),
          });
        } catch (e) {
          return stale(
            entry,
            `the upstream ${upstream} cannot be reached to check the credentials (${(e as Error).message})`,
          );
        }
        if (res.status === 401) {
          remember(hash, { answer: null, until: Date.now() + negativeTtl, okAt: 0 });
          throw refusedCredentials();
        }
        if (!res.ok)
          return stale(entry, `the upstream ${upstream} answered ${res.status} when asked to check the credentials`);
        const answer = whoamiResponseSchema.parse(await res.json());
        remember(hash, { answer, until: Date.now() + authTtl, okAt: Date.now() });
        return answer;
      })().finally(() => asking.delete(hash));
      asking.set(hash, p);
    }
    return p;
  }

  function stale(entry: AuthEntry | undefined, why: string): WhoamiResponse {
    if (entry?.answer && Date.now() - entry.okAt < staleAuth) {
      o.log.warn({ why }, 'distribution point: upstream unavailable; trusting an earlier answer');
      return entry.answer;
    }
    throw new DpError(503, 'UPSTREAM', `${why}; try the central server`);
  }

  let known: Self | undefined;
  let learning: Promise<Self> | undefined;

  /** Asks the upstream who this point is and for the download-token key (not from the auth cache: rotation). */
  async function learnSelf(): Promise<Self> {
    let res: Response;
    try {
      res = await f(`${upstream}/agent/v1/whoami`, {
        headers: { authorization: `Bearer ${o.token}` },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (e) {
      throw new DpError(
        503,
        'UPSTREAM',
        `the upstream ${upstream} cannot be reached for this point's identity and the download-token key (${(e as Error).message})`,
      );
    }
    if (res.status === 401) {
      throw new DpError(
        502,
        'UPSTREAM',
        "the upstream refused this distribution point's token: register it again (`patchops distribution-point-register`) and restart it with the new token",
        true,
      );
    }
    if (!res.ok)
      throw new DpError(
        503,
        'UPSTREAM',
        `the upstream ${upstream} answered ${res.status} when asked for this point's identity and the download-token key`,
      );
    const me = whoamiResponseSchema.parse(await res.json());
    if (me.kind !== 'distribution-point')
      throw new DpError(
        502,
        'UPSTREAM',
        "the token given to this distribution point is an agent's node key, not a distribution point token",
      );
    if (!me.tokenKey)
      throw new DpError(
        502,
        'UPSTREAM',
        `the upstream ${upstream} did not give the download-token key (tokenKey): upgrade it`,
      );
    let tokenKey: KeyObject;
    try {
      tokenKey = createPublicKey(me.tokenKey);
    } catch (e) {
      throw new DpError(
        502,
        'UPSTREAM',
        `the upstream's download-token key is not a public key: ${(e as Error).message}`,
      );
    }
    if (known && known.tokenKeyPem !== me.tokenKey)
      o.log.info({ name: me.name }, 'distribution point: the download-token key changed upstream');
    return { name: me.name, site: me.site, tokenKey, tokenKeyPem: me.tokenKey, at: Date.now() };
  }

  /** Who this point is and the download-token key: remembered for keyRefreshMs; an earlier answer counts while the upstream is away. */
  async function identity(): Promise<Self> {
    if (known && Date.now() - known.at < keyRefreshMs) return known;
    learning ??= learnSelf()
      .then(
        (me) => (known = me),
        (e: unknown) => {
          if (!known || (e instanceof DpError && e.ownTokenRefused)) throw e;
          o.log.warn(
            { err: (e as Error).message },
            'distribution point: could not refresh the download-token key; using the one it has',
          );
          known = { ...known, at: Date.now() - keyRefreshMs + Math.min(keyRefreshMs, 30_000) }; // ask again in 30 s
          return known;
        },
      )
      .finally(() => (learning = undefined));
    return learning;
  }

  /** A downstream point (its token, asked of the upstream) or an agent (its download token, checked offline). */
  async function authorize(req: http.IncomingMessage): Promise<WhoamiResponse> {
    const m = req.headers.authorization ? /^Bearer\s+(\S+)$/i.exec(req.headers.authorization) : null;
    if (!m)
      throw new DpError(
        401,
        'UNAUTHORIZED',
        'missing credentials: send "Authorization: Bearer <download token>" (agents: the token of the last poll) or "Authorization: Bearer <distribution point token>"',
      );
    const credential = m[1]!;
    if (credential.startsWith('v1.')) {
      const me = await identity();
      try {
        const claims = verifyDownloadToken(credential, me.tokenKey, {
          now: now(),
          site: o.anySite ? undefined : me.site,
        });
        return { kind: 'agent', endpointId: claims.sub, site: claims.site };
      } catch (e) {
        if (!(e instanceof DownloadTokenError)) throw e;
        if (e.reason === 'wrong_site')
          throw new DpError(
            403,
            'FORBIDDEN',
            `distribution point ${me.name} serves site ${me.site}: ${e.message}; fetch from the central server`,
          );
        throw new DpError(401, 'UNAUTHORIZED', `${e.message}: poll the central server for a new download token`);
      }
    }
    const who = await askUpstream(credential);
    if (who.kind !== 'distribution-point')
      throw new DpError(
        401,
        'UNAUTHORIZED',
        'distribution points do not take node keys: send the download token of the last poll',
      );
    return who;
  }

  // ---------------------------------------------------------------- fill and serve

  async function fill(sha: string): Promise<void> {
    const res = await f(`${upstream}/agent/v1/files/${sha}`, {
      headers: { authorization: `Bearer ${o.token}` },
      signal: AbortSignal.timeout(10 * 60_000),
    });
    if (res.status === 401)
      throw new DpError(
        502,
        'UPSTREAM',
        "the upstream refused this distribution point's token (401): register it again and restart it with the new token",
      );
    if (!res.ok || !res.body)
      throw new DpError(
        res.status === 404 ? 404 : 502,
        res.status === 404 ? 'NOT_FOUND' : 'UPSTREAM',
        `upstream answered ${res.status}`,
      );
    const tmp = `${fileOf(sha)}.${randomUUID()}.tmp`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>),
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            size += chunk.length;
            cb(null, chunk);
          },
        }),
        createWriteStream(tmp),
      );
      const got = hash.digest('hex');
      if (got !== sha) {
        stats.rejected += 1;
        throw new DpError(502, 'UPSTREAM', `upstream served bytes hashing to ${got}, not ${sha}: not cached`);
      }
      await fs.rename(tmp, fileOf(sha));
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
    forget(sha);
    index.set(sha, size);
    cacheBytes += size;
    await evict(sha);
  }

  async function ensureFilled(sha: string): Promise<void> {
    let p = fills.get(sha);
    if (!p) {
      p = fill(sha).finally(() => fills.delete(sha));
      fills.set(sha, p);
    }
    await p;
  }

  /** Opens the cached file (filling it first on a miss) and counts it as being served until the stream closes. */
  async function open(sha: string): Promise<{ handle: fs.FileHandle; size: number }> {
    for (let attempt = 0; ; attempt++) {
      if (index.has(sha)) {
        if (attempt === 0) stats.hits += 1;
        touch(sha);
      } else {
        stats.misses += 1;
        await ensureFilled(sha);
      }
      serving.set(sha, (serving.get(sha) ?? 0) + 1);
      try {
        const handle = await fs.open(fileOf(sha), 'r');
        return { handle, size: (await handle.stat()).size };
      } catch (e) {
        release(sha);
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw e;
        forget(sha); // deleted behind our back: fill again
      }
    }
  }

  const release = (sha: string) => {
    const n = (serving.get(sha) ?? 1) - 1;
    if (n <= 0) serving.delete(sha);
    else serving.set(sha, n);
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://dp');
      if (req.method === 'GET' && url.pathname === '/healthz') {
        json(res, 200, {
          status: 'ok',
          upstream,
          name: known?.name ?? null,
          site: known?.site ?? null,
          ...stats,
          cacheBytes,
          cacheFiles: index.size,
          maxCacheBytes: maxBytes,
        });
        return;
      }
      if (req.method === 'GET' && url.pathname === '/agent/v1/whoami') {
        // A downstream point learns the download-token key from here: pass on the one this point verifies with.
        const who = await authorize(req);
        json(res, 200, who.kind === 'distribution-point' ? { ...who, tokenKey: (await identity()).tokenKeyPem } : who);
        return;
      }
      const m = FILE_PATH.exec(url.pathname);
      if (req.method !== 'GET' || !m) throw new DpError(404, 'NOT_FOUND', 'GET /agent/v1/files/<sha256> only');
      await authorize(req); // the site of an agent's token is checked there
      const sha = m[1]!;
      const { handle, size } = await open(sha);
      const stream = handle.createReadStream();
      stream.once('close', () => release(sha));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      stream.pipe(res);
      res.once('close', () => stream.destroy());
    })().catch((e: Error & { status?: number; code?: string }) => {
      const status = e instanceof DpError ? e.status : 500;
      if (status === 401 || status === 403) stats.refused += 1;
      if (status >= 500) o.log.warn({ err: e.message, url: req.url }, 'distribution point: request failed');
      if (!res.headersSent)
        json(res, status, { error: e instanceof DpError ? e.code : 'INTERNAL', message: e.message });
      else res.destroy();
    });
  });

  // Learn who we are and the download-token key now, so a wrong token stops start-up; an unreachable upstream is
  // retried on the first request. Then ask again every keyRefreshMs, so a rotated key is picked up.
  try {
    const me = await identity();
    o.log.info({ name: me.name, site: me.site }, 'distribution point: token accepted by the upstream');
  } catch (e) {
    if (e instanceof DpError && e.status === 502) throw new Error(e.message, { cause: e });
    o.log.warn(
      { err: (e as Error).message },
      'distribution point: could not reach the upstream yet; will retry on the first request',
    );
  }
  const keyTimer = setInterval(() => {
    if (known) known = { ...known, at: 0 }; // due
    identity().catch((e: unknown) =>
      o.log.warn({ err: (e as Error).message }, 'distribution point: could not refresh the download-token key'),
    );
  }, keyRefreshMs);
  keyTimer.unref();

  await new Promise<void>((resolve) => server.listen(o.port ?? 8081, o.host ?? '0.0.0.0', resolve));
  const addr = server.address() as AddressInfo;
  const host = o.host && o.host !== '0.0.0.0' ? o.host : '127.0.0.1';
  o.log.info(
    { port: addr.port, upstream, cacheDir: o.cacheDir, cacheBytes, cacheFiles: index.size, maxCacheBytes: maxBytes },
    'distribution point listening',
  );
  return {
    url: `http://${host}:${addr.port}`,
    stats,
    cache: () => ({ bytes: cacheBytes, files: index.size }),
    close: () =>
      new Promise((resolve) => {
        clearInterval(keyTimer);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
