/**
 * The API's one way into the command core: a parsed Command runs through execute() (its role check, then the
 * verb) as the token's person, on channel `api`. A refusal becomes a CodedError, so the server's one error
 * mapping gives it its status (403 for a role, 404 for an unknown cycle, 409 for a refused vote).
 */
import type { Command } from '../commands/grammar';
import { execute } from '../commands/execute';
import type { CommandData } from '../commands/outcome';
import { CodedError } from '../domain/errors';
import type { ApiCaller } from './auth';
import type { ApiDeps } from './deps';

export interface CommandReply {
  text: string;
  data: CommandData;
}

export async function runCommand(deps: ApiDeps, caller: ApiCaller, command: Command): Promise<CommandReply> {
  const outcome = await execute(command, {
    identity: caller.identity,
    channel: 'api',
    roles: caller.roles,
    service: deps.service,
    db: deps.db,
  });
  if (!outcome.ok) throw new CodedError(outcome.code, outcome.message);
  return { text: outcome.text, data: outcome.data };
}
