/**
 * The chat command path: the one grammar (grammar.ts) and the one executor (execute.ts), with the caller's
 * roles read from the database on every command (a revoke takes effect at the next one). Unknown words get
 * the usage text, a failure on our side a plain sentence; never a stack trace.
 */
import type { Db } from '../db/client';
import { rolesOf } from '../db/identities';
import { ErrorCode } from '../domain/errors';
import type { IdentityDirectory } from '../domain/ports';
import type { Logger } from '../logging';
import { execute } from './execute';
import type { CycleService } from '../services/cycle-service';
import type { CommandRunner } from './runner-types';
import { parseCommand } from './grammar';

export function createCommandRunner(deps: {
  service: CycleService;
  db: Db;
  logger: Logger;
  directory?: IdentityDirectory;
}): CommandRunner {
  return async (text, caller) => {
    const parsed = parseCommand(text);
    if (!parsed.ok) return { ok: false, code: ErrorCode.InvalidInput, message: `${parsed.error}\n\n${parsed.usage}` };
    try {
      const roles = [...new Set((await rolesOf(deps.db, caller.identity)).map((g) => g.role))];
      return await execute(parsed.command, {
        identity: caller.identity,
        channel: caller.channel,
        roles,
        service: deps.service,
        db: deps.db,
        ...(deps.directory ? { directory: deps.directory } : {}),
      });
    } catch (e) {
      deps.logger.error({ err: e, verb: parsed.command.verb, identity: caller.identity }, 'chat command failed');
      return {
        ok: false,
        code: ErrorCode.DependencyDown,
        message: `"${parsed.command.verb}" failed on our side (${(e as Error).message}); it is logged. Try again in a moment.`,
      };
    }
  };
}
