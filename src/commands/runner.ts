/**
 * The chat command path: the one grammar (grammar.ts) and the one executor (commands/execute.ts), with the
 * caller's roles read from the database. Unknown words get the usage text, never a stack trace.
 */
import type { Db } from '../db/client';
import { hasRole } from '../db/identities';
import type { Logger } from '../logging';
import { executeCommand } from './execute';
import type { CycleService } from '../services/cycle-service';
import type { CommandRunner } from './runner-types';
import { parseCommand } from './grammar';

export function createCommandRunner(deps: { service: CycleService; db: Db; logger: Logger }): CommandRunner {
  return async (text, caller) => {
    const parsed = parseCommand(text);
    if (!parsed.ok) return { text: `${parsed.error}\n\n${parsed.usage}`, data: { error: 'INVALID_INPUT' } };
    const [isAdmin, isApprover] = await Promise.all([hasRole(deps.db, caller.identity, 'admin'), hasRole(deps.db, caller.identity, 'approver')]);
    try {
      return await executeCommand(parsed.command, { identity: caller.identity, channel: caller.channel, service: deps.service, db: deps.db, isAdmin, isApprover });
    } catch (e) {
      deps.logger.error({ err: e, verb: parsed.command.verb, identity: caller.identity }, 'chat command failed');
      return { text: `"${parsed.command.verb}" failed on our side (${(e as Error).message}); it is logged. Try again in a moment.`, data: { error: 'ERROR' } };
    }
  };
}
