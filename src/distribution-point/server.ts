/**
 * `patchops distribution-point`: a site cache of the central repository's files. Files are named by their
 * sha256; a miss is fetched from the upstream (the central server or another point), its hash checked, then
 * stored and served. Concurrent misses for one file share one upstream fetch. Agents still verify every
 * file against the signed manifest: a distribution point is trusted for nothing.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

export interface DistributionPointOptions {
  upstream: string;
  cacheDir: string;
  host?: string;
  port?: number;
  log: Logger;
  fetchImpl?: typeof fetch;
}

export interface RunningDistributionPoint {
  url: string;
  stats: { hits: number; misses: number; rejected: number };
  close(): Promise<void>;
}

const FILE_PATH = /^\/agent\/v1\/files\/([0-9a-f]{64})$/;

export async function startDistributionPoint(o: DistributionPointOptions): Promise<RunningDistributionPoint> {
  await fs.mkdir(o.cacheDir, { recursive: true });
  const stats = { hits: 0, misses: 0, rejected: 0 };
  const inflight = new Map<string, Promise<string>>();
  const f = o.fetchImpl ?? fetch;

  async function fill(sha: string): Promise<string> {
    const dest = path.join(o.cacheDir, sha);
    const res = await f(`${o.upstream.replace(/\/+$/, '')}/agent/v1/files/${sha}`, { signal: AbortSignal.timeout(10 * 60_000) });
    if (!res.ok) throw Object.assign(new Error(`upstream answered ${res.status}`), { status: res.status === 404 ? 404 : 502 });
    const bytes = Buffer.from(await res.arrayBuffer());
    const got = createHash('sha256').update(bytes).digest('hex');
    if (got !== sha) {
      stats.rejected += 1;
      throw Object.assign(new Error(`upstream served bytes hashing to ${got}, not ${sha}: not cached`), { status: 502 });
    }
    const tmp = `${dest}.${process.pid}.tmp`;
    await fs.writeFile(tmp, bytes);
    await fs.rename(tmp, dest);
    return dest;
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://dp');
      if (req.method === 'GET' && url.pathname === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', upstream: o.upstream, ...stats }));
        return;
      }
      const m = FILE_PATH.exec(url.pathname);
      if (req.method !== 'GET' || !m) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'NOT_FOUND', message: 'GET /agent/v1/files/<sha256> only' }));
        return;
      }
      const sha = m[1]!;
      let file = path.join(o.cacheDir, sha);
      const cached = await fs.stat(file).catch(() => null);
      if (cached?.isFile()) stats.hits += 1;
      else {
        stats.misses += 1;
        let p = inflight.get(sha);
        if (!p) {
          p = fill(sha).finally(() => inflight.delete(sha));
          inflight.set(sha, p);
        }
        file = await p;
      }
      const st = await fs.stat(file);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': st.size });
      createReadStream(file).pipe(res);
    })().catch((e: Error & { status?: number }) => {
      o.log.warn({ err: e.message, url: req.url }, 'distribution point: request failed');
      if (!res.headersSent) res.writeHead(e.status ?? 500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'UPSTREAM', message: e.message }));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(o.port ?? 8081, o.host ?? '0.0.0.0', resolve));
  const addr = server.address() as AddressInfo;
  const host = o.host && o.host !== '0.0.0.0' ? o.host : '127.0.0.1';
  o.log.info({ port: addr.port, upstream: o.upstream, cacheDir: o.cacheDir }, 'distribution point listening');
  return {
    url: `http://${host}:${addr.port}`,
    stats,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
