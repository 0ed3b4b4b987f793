import type { Database } from '../db/client';
import { openDatabaseForCommand } from '../runtime/database';
import { configOrExit, loggerFor } from './context';

/** Runs `fn` on the database of a one-shot command (a running `up`'s, DATABASE_URL's, or one opened here), then closes it. */
export async function withDb<T>(fn: (db: { database: Database }) => Promise<T>): Promise<T> {
  const config = configOrExit();
  const logger = loggerFor(config);
  logger.level = 'warn';
  const db = await openDatabaseForCommand(config, logger);
  try {
    return await fn(db);
  } finally {
    await db.stop();
  }
}
