import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

/**
 * The embedded default: PGlite (Postgres compiled to WASM) persisted under `dataDir`, served on the
 * Postgres wire protocol so that the product talks to it through node-postgres exactly as it talks to a
 * real server. `dataDir` undefined = in memory (tests).
 *
 * PGlite is one backend: connections are multiplexed and a transaction on one makes the others wait.
 */
export async function startEmbeddedPostgres(options: { dataDir?: string; port: number; host?: string }): Promise<EmbeddedPostgres> {
  if (options.dataDir) await fs.mkdir(path.dirname(options.dataDir), { recursive: true });
  const db = await PGlite.create(options.dataDir ? { dataDir: options.dataDir } : {});
  const host = options.host ?? '127.0.0.1';
  const server = new PGLiteSocketServer({ db, port: options.port, host, maxConnections: 20 });
  try {
    await server.start();
  } catch (err) {
    await db.close();
    throw new Error(
      `Could not serve the embedded database on ${host}:${options.port} (${(err as Error).message}). ` +
        'Another patchops may be running; stop it, or set PATCHOPS_EMBEDDED_PG_PORT to a free port.',
      { cause: err },
    );
  }
  const address = server.getServerConn();
  const port = Number(address.split(':').pop() ?? options.port);
  return {
    url: `postgres://postgres:postgres@${host}:${port}/postgres?sslmode=disable`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
