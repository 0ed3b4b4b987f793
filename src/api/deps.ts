/** What the API's route modules are given by the composition root. */
import type { Db } from '../db/client';
import type { Logger } from '../logging';
import type { CycleService } from '../services/cycle-service';
import type { LoginThrottle } from '../server/dashboard/login-throttle';

export interface ApiDeps {
  db: Db;
  service: CycleService;
  logger: Logger;
  /** Failed password sign-ins at POST /login (one per process; the dashboard keeps its own). */
  loginThrottle?: LoginThrottle;
  now?: () => Date;
}
