import net from 'node:net';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { Config } from '../config/index';
import { connectDatabase, type Database } from '../db/client';
import { startEmbeddedPostgres } from '../db/embedded';
import { runMigrations } from '../db/migrate';
import type { Logger } from '../logging';
import type { HealthCheck } from '../server/health';

export interface RunningDatabase {
  database: Database;
  url: string;
  /** Describes where the data is, for the ready block. */
  description: string;
  health: HealthCheck;
  stop(): Promise<void>;
}

/** DATABASE_URL → that PostgreSQL; unset → embedded PGlite under <dataDir>/pglite on the wire protocol. Migrates either way. */
export async function startDatabase(config: Config, logger: Logger, options: { migrate?: boolean } = {}): Promise<RunningDatabase> {
  let url = config.database.url;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let description: string;
  if (url) {
    description = `PostgreSQL ${redactUrl(url)}`;
  } else {
    const dataDir = path.join(config.dataDir, 'pglite');
    const embedded = await startEmbeddedPostgres({ dataDir, port: config.database.embeddedPort });
    url = embedded.url;
    stopEmbedded = embedded.stop;
    description = `embedded PGlite in ${path.relative(process.cwd(), dataDir) || dataDir} (served at ${redactUrl(url)})`;
    logger.info({ dataDir, url: redactUrl(url) }, 'embedded database started');
  }
  const database = connectDatabase(url, { max: stopEmbedded ? 5 : 10 });
  try {
    if (options.migrate !== false) {
      await runMigrations(database.db);
      logger.info('database migrations applied');
    }
  } catch (e) {
    await database.close();
    await stopEmbedded?.();
    throw e;
  }
  return {
    database,
    url,
    description,
    health: {
      name: 'database',
      async check() {
        await database.db.execute(sql`select 1`);
        return { status: 'up', detail: stopEmbedded ? 'embedded PGlite' : 'PostgreSQL' };
      },
    },
    async stop() {
      await database.close();
      await stopEmbedded?.();
    },
  };
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

/**
 * The database for a one-shot CLI command: DATABASE_URL; else the embedded database of a running
 * `patchops up` (its wire-protocol port; two PGlite instances cannot share one data folder); else the
 * embedded database opened here for the command's length. Migrated either way.
 */
export async function openDatabaseForCommand(config: Config, logger: Logger): Promise<{ database: Database; stop(): Promise<void> }> {
  if (!config.database.url && (await portOpen('127.0.0.1', config.database.embeddedPort))) {
    const database = connectDatabase(`postgres://postgres:postgres@127.0.0.1:${config.database.embeddedPort}/postgres?sslmode=disable`, {
      max: 2,
      applicationName: 'patchops-cli',
    });
    await runMigrations(database.db);
    return { database, stop: () => database.close() };
  }
  const started = await startDatabase(config, logger);
  return { database: started.database, stop: started.stop };
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
