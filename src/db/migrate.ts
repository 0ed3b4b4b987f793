import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import type pg from 'pg';
import type { Db } from './client';

export const MIGRATIONS_FOLDER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/** pg_advisory_lock key of the migrations ("patchops" in ASCII, as a bigint). */
export const MIGRATION_LOCK_KEY = 0x7061746368_6f7073n.toString();

/**
 * Applies every committed migration that has not run yet. Applying twice is a no-op. Several processes starting
 * at once against one database (two servers and two workers) take turns: the first migrates while the others
 * wait on a session-level advisory lock (held on a connection of `pool`, the pool under `db`), then find nothing
 * left to do. Without a pool (tests on a database of their own) no lock is taken.
 */
export async function runMigrations(db: Db, pool?: pg.Pool): Promise<void> {
  if (!pool) {
    await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
    return;
  }
  const lock = await pool.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
    try {
      await migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    lock.release();
  }
}
