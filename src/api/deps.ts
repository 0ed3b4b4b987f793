/** What the API's route modules are given by the composition root. */
import type { Db } from '../db/client';
import type { Logger } from '../logging';
import type { CycleService } from '../services/cycle-service';
import type { LoginThrottle } from '../shared/contracts';

export interface ApiDeps {
  db: Db;
  service: CycleService;
  logger: Logger;
  /** Failed password sign-ins at POST /login: in production the same shared counts as the dashboard's sign-in form. */
  loginThrottle?: LoginThrottle;
  now?: () => Date;
}
