import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { Config } from '../config/index';
import { auditKeysFrom, useAuditKeys, type AuditKeys } from '../db/audit';
import { writeAuditCheckpoint } from '../db/audit-checkpoint';
import { APP_ROLE, connectDatabase, type Database } from '../db/client';
import { embeddedUrl, startEmbeddedPostgres } from '../db/embedded';
import { runMigrations } from '../db/migrate';
import { secretBoxFor } from '../db/secret-box';
import type { Logger } from '../logging';
import type { HealthCheck } from '../shared/contracts';

export interface RunningDatabase {
  database: Database;
  url: string;
  /** Describes where the data is, for the ready block. */
  description: string;
  health: HealthCheck;
  stop(): Promise<void>;
}

/** The embedded database's password file (created by the first start, mode 0600). */
export function embeddedPasswordFile(config: Config): string {
  return path.join(config.dataDir, 'pglite.password');
}

/** The URL of a running `patchops up`'s embedded database, with the password from its file. */
export function embeddedDatabaseUrl(config: Config): string {
  const file = embeddedPasswordFile(config);
  let password: string;
  try {
    password = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new Error(
      `cannot read the embedded database's password from ${file} (${(e as Error).message}): run this as the user that runs \`patchops up\`, with the same PATCHOPS_DATA_DIR`,
      { cause: e },
    );
  }
  return embeddedUrl('127.0.0.1', config.database.embeddedPort, password);
}

/**
 * A pool for the application's own work (not migrations): DATABASE_APP_URL's login when set; else DATABASE_URL
 * acting as patchops_app; else a running `patchops up`'s embedded database with its password.
 */
export function connectAppDatabase(config: Config, options: { max?: number; applicationName?: string } = {}): Database {
  if (config.database.appUrl) return connectDatabase(config.database.appUrl, options);
  if (config.database.url) return connectDatabase(config.database.url, { ...options, role: APP_ROLE });
  return connectDatabase(embeddedDatabaseUrl(config), options);
}

/** Loads this process's audit keys from the secrets key (SECRETS_KEY or <dataDir>/secrets.key). */
export async function loadAuditKeys(config: Config): Promise<AuditKeys> {
  const keys = auditKeysFrom(await secretBoxFor(config));
  useAuditKeys(keys);
  return keys;
}

/**
 * DATABASE_URL → that PostgreSQL; unset → embedded PGlite under <dataDir>/pglite on the wire protocol. Migrates
 * either way, as DATABASE_URL's (the owner's) login; everything after runs as the application's role: the login of
 * DATABASE_APP_URL when set, else DATABASE_URL acting as patchops_app from each connection's start. The embedded
 * database is one PGlite session, so there the role cannot be per connection: its password and loopback address are
 * what keep others out, and the keyed chain and checkpoints what detect its owner's edits.
 * The audit chain is checkpointed at start, every PATCHOPS_AUDIT_CHECKPOINT_MINUTES and at stop (`checkpoint: false`
 * for a one-shot command: `audit verify` checkpoints itself).
 */
export async function startDatabase(
  config: Config,
  logger: Logger,
  options: { migrate?: boolean; checkpoint?: boolean } = {},
): Promise<RunningDatabase> {
  const keys = await loadAuditKeys(config);
  let url = config.database.url;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let description: string;
  if (url) {
    description = `PostgreSQL ${redactUrl(config.database.appUrl ?? url)}${config.database.appUrl ? '' : ` as ${APP_ROLE}`}`;
  } else {
    const dataDir = path.join(config.dataDir, 'pglite');
    const embedded = await startEmbeddedPostgres({
      dataDir,
      port: config.database.embeddedPort,
      passwordFile: embeddedPasswordFile(config),
    });
    url = embedded.url;
    stopEmbedded = embedded.stop;
    description = `embedded PGlite in ${path.relative(process.cwd(), dataDir) || dataDir} (served at ${redactUrl(url)})`;
    logger.info({ dataDir, url: redactUrl(url) }, 'embedded database started');
  }
  // Two connections at least: one holds the migration lock while the other migrates.
  let database = connectDatabase(url, { max: stopEmbedded ? 5 : 2, applicationName: 'patchops-migrate' });
  try {
    if (options.migrate !== false) {
      await runMigrations(database.db, database.pool);
      logger.info('database migrations applied');
    }
    if (!stopEmbedded) {
      await database.close();
      database = connectAppDatabase(config, { max: 10 });
      await database.db.execute(sql`select 1`);
    }
  } catch (e) {
    await database.close();
    await stopEmbedded?.();
    throw e;
  }
  const checkpoint = async () => {
    if (options.checkpoint === false) return;
    try {
      const r = await writeAuditCheckpoint(database.db, config.audit.checkpointFile, keys);
      if (r.report.problem) {
        logger.error(
          { row: r.report.problem.id, reason: r.report.problem.reason, checkpoint: config.audit.checkpointFile },
          'AUDIT LOG TAMPERED: the checkpoint was not moved; run `patchops audit verify`',
        );
      } else if (r.written) {
        logger.debug({ headId: r.written.headId, file: config.audit.checkpointFile }, 'audit checkpoint written');
      }
    } catch (err) {
      logger.error({ err, checkpoint: config.audit.checkpointFile }, 'the audit checkpoint could not be written');
    }
  };
  await checkpoint();
  const timer =
    options.checkpoint !== false && config.audit.checkpointMinutes > 0
      ? setInterval(() => void checkpoint(), config.audit.checkpointMinutes * 60_000)
      : undefined;
  timer?.unref();
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
      if (timer) clearInterval(timer);
      await checkpoint();
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
export async function openDatabaseForCommand(
  config: Config,
  logger: Logger,
): Promise<{ database: Database; stop(): Promise<void> }> {
  if (!config.database.url && (await portOpen('127.0.0.1', config.database.embeddedPort))) {
    await loadAuditKeys(config);
    const database = connectAppDatabase(config, { max: 2, applicationName: 'patchops-cli' });
    await runMigrations(database.db, database.pool);
    return { database, stop: () => database.close() };
  }
  const started = await startDatabase(config, logger, { checkpoint: false });
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
