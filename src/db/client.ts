import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import * as schema from './schema/index';

export type Schema = typeof schema;
export type Db = NodePgDatabase<Schema>;

export interface Database {
  db: Db;
  pool: pg.Pool;
  close(): Promise<void>;
}

/** The role the application acts as (migration 0013): it may only INSERT and SELECT on audit_log and owns nothing. */
export const APP_ROLE = 'patchops_app';

/**
 * One node-postgres pool and a drizzle handle over it: the one code path for PostgreSQL and embedded PGlite.
 * `role` makes every connection act as that role from its start (`-c role=…` in the startup packet): a connection
 * that cannot take the role fails instead of silently running with the login's own rights.
 */
export function connectDatabase(
  url: string,
  options: { max?: number; applicationName?: string; role?: string } = {},
): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'patchops',
    connectionTimeoutMillis: 10_000,
    ...(options.role ? { options: `-c role=${options.role}` } : {}),
  });
  // An idle client's error (server restart) must not crash the process; the next query reconnects. A checked-out
  // client's error (its backend killed mid-query) fails that query; without a listener it would crash the process.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = drizzle(pool, { schema, casing: 'snake_case' });
  let closed = false;
  return {
    db,
    pool,
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
