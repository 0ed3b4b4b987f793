/** What the API's route modules are given by the composition root. */
import type { Db } from '../db/client';
import type { SecretBox } from '../db/secret-box';
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
  /**
   * The signed audit checkpoint of this server (config.audit.checkpointFile): POST /audit/verify compares the log
   * with it (a cut tail is named) and moves it forward over an intact log. Absent: the chain alone is verified.
   */
  auditCheckpointFile?: string;
  /**
   * The central repository: the key that signs its manifest, the folder of its files and the largest file one upload
   * may add (PATCHOPS_REPO_MAX_UPLOAD_MB; default 4096 MB). Absent: changing it is refused (409).
   */
  repository?: { box: SecretBox; dir: string; maxUploadBytes?: number };
}
