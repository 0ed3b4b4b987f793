import type { Database } from '../db/client';
import type { Logger } from '../logging';
import { createProbeActivities } from './probe';

/** What the worker injects into activities: real clients in production, fakes in tests. */
export interface ActivityDeps {
  database: Database;
  logger: Logger;
}

/** The one activity factory (Temporal samples style): the worker passes real dependencies, tests pass fakes. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createProbeActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
