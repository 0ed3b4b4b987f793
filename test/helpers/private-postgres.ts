/**
 * A PostgreSQL server of the test's own (initdb + pg_ctl from /usr/lib/postgresql/<version>/bin into a temporary
 * folder, on a free port), for tests that restart the database: the machine's shared PostgreSQL must never be
 * restarted. As root (initdb refuses root) the cluster belongs to the `postgres` user and every command runs
 * through `runuser -u postgres`. Trust authentication on 127.0.0.1 only; the superuser is `postgres`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** Stops the server (fast: open connections are terminated), waits `downMs`, starts it again on the same port. */
  restart(downMs?: number): Promise<void>;
  /** Stops the server and removes its folder. */
  close(): Promise<void>;
}

async function binDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const versions = (await fs.readdir(root).catch(() => [] as string[])).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (
      await fs.access(path.join(bin, 'initdb')).then(
        () => true,
        () => false,
      )
    )
      return bin;
  }
  throw new Error(`no PostgreSQL server binaries (initdb, pg_ctl) under ${root}`);
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = await binDir();
  const asRoot = process.getuid?.() === 0;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  if (asRoot) await run('chown', ['postgres:postgres', dir]);
  const pg = (tool: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);
  const port = await freePort();
  await pg('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const start = () => pg('pg_ctl', ['start', '-D', data, '-l', logFile, '-w', '-t', '60', '-o', options]);
  const stop = (mode: 'fast' | 'immediate') => pg('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '60']);
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async restart(downMs = 0) {
      await stop('fast');
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async close() {
      await stop('immediate').catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
