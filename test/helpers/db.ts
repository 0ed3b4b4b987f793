import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { auditKeysFrom, auditKeysLoaded, useAuditKeys } from '../../src/db/audit';
import { connectDatabase, type Database } from '../../src/db/client';
import { startEmbeddedPostgres } from '../../src/db/embedded';
import { runMigrations } from '../../src/db/migrate';
import { SecretBox } from '../../src/db/secret-box';
import { freePort } from './free-port';

export interface TestDatabase extends Database {
  url: string;
  kind: 'postgres' | 'pglite';
}

/**
 * A database of the test's own, migrated: a fresh database on the real PostgreSQL server when DATABASE_URL
 * is set (CI), else an in-memory PGlite served on the wire protocol. close() drops it. `baseUrl` names another
 * server to use instead of DATABASE_URL's (a private one the test may restart: private-postgres.ts).
 */
export async function createTestDatabase(options: { migrate?: boolean; baseUrl?: string } = {}): Promise<TestDatabase> {
  // The audit chain is keyed: a test process writes and verifies it under a key of its own.
  if (!auditKeysLoaded()) useAuditKeys(auditKeysFrom(SecretBox.ephemeral()));
  const base = options.baseUrl ?? process.env.DATABASE_URL;
  let url: string;
  let dispose: () => Promise<void>;
  let kind: TestDatabase['kind'];
  if (base) {
    kind = 'postgres';
    const name = `patchops_t_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
    await admin.end();
    const u = new URL(base);
    u.pathname = `/${name}`;
    url = u.toString();
    dispose = async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    };
  } else {
    kind = 'pglite';
    const embedded = await startEmbeddedPostgres({ port: await freePort() });
    url = embedded.url;
    dispose = embedded.stop;
  }
  const database = connectDatabase(url, { max: kind === 'pglite' ? 3 : 5 });
  if (options.migrate !== false) await runMigrations(database.db);
  return {
    ...database,
    url,
    kind,
    async close() {
      await database.close();
      await dispose();
    },
  };
}
