/**
 * The chat verbs the command line offers as top-level commands (`patchops approve …`). Its own module so the
 * command registry can route them without loading the command module itself.
 */
export const VERBS_ON_CLI = [
  'status',
  'cycles',
  'scan',
  'start',
  'approve',
  'reject',
  'pause',
  'resume',
  'cancel',
  'rollback',
  'exceptions',
  'endpoints',
  'roles',
  'people',
] as const;
