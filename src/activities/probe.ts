import type { Database } from '../db/client';
import { sql } from 'drizzle-orm';

export interface ProbeActivities {
  probeEcho(message: string): Promise<string>;
}

export function createProbeActivities(deps: { database: Database }): ProbeActivities {
  return {
    async probeEcho(message) {
      // Touch the database too, so a probe proves the worker can reach it.
      await deps.database.db.execute(sql`select 1`);
      return `echo: ${message}`;
    },
  };
}
