/**
 * The command executor in the old flat shape (flags instead of roles, `data` as the verb's bare payload or
 * `{ error: code }`), which the cycle-service and compliance tests assert against. It was `executeCommand` in
 * src/commands/execute.ts, the CLI's deprecated in-process path; nothing in src/ called it any more, so it
 * lives here, over the real `execute()`.
 */
import type { Db } from '../../src/db/client';
import type { Role } from '../../src/db/identities';
import type { Channel } from '../../src/domain/cycle';
import { execute } from '../../src/commands/execute';
import type { Command } from '../../src/commands/grammar';
import type { CommandData } from '../../src/commands/outcome';
import type { CycleService } from '../../src/services/cycle-service';

/** The old context of the CLI's in-process path (decisions #9): flags instead of roles. */
export interface CommandContext {
  identity: string;
  channel: Channel;
  service: CycleService;
  db: Db;
  isAdmin: boolean;
  isApprover: boolean;
}

/** The old untyped result: `data` is the verb's bare payload, or `{ error: code }` on refusal. */
export interface CommandResult {
  text: string;
  data?: unknown;
}

/** The verb's payload in the old shape (what `--json` printed and older callers read). */
function legacyData(d: CommandData): unknown {
  switch (d.verb) {
    case 'help':
    case 'pause':
    case 'resume':
    case 'cancel':
    case 'rollback':
      return undefined;
    case 'status':
      return d.status ?? undefined;
    case 'cycles':
      return d.cycles;
    case 'scan':
      return { workflowId: d.workflowId };
    case 'start':
      return { cycleId: d.cycleId, workflowId: d.workflowId };
    case 'approve':
    case 'reject':
      return d.result;
    case 'report':
      return d.summary;
    case 'endpoints':
      return d.endpoints.map((e) => ({ id: e.id, hostname: e.hostname, os_family: e.osFamily, status: e.status }));
    case 'exceptions':
      return d.action === 'list' ? d.exceptions : d.action === 'add' ? d.exception : undefined;
    case 'roles':
      return d.action === 'list' ? d.grants : undefined;
    case 'people':
      return d.action === 'list' ? d.people : undefined;
  }
}

/**
 * `execute()` with the flags as roles: the caller is given the viewer role besides the flagged ones (the CLI's
 * in-process path ran where the database credentials are); the check itself is execute()'s, as for every verb.
 */
export async function executeCommand(command: Command, ctx: CommandContext): Promise<CommandResult> {
  const roles: Role[] = [
    'viewer',
    ...(ctx.isApprover ? (['approver'] as const) : []),
    ...(ctx.isAdmin ? (['admin'] as const) : []),
  ];
  const outcome = await execute(command, {
    identity: ctx.identity,
    channel: ctx.channel,
    service: ctx.service,
    db: ctx.db,
    roles,
  });
  if (!outcome.ok) return { text: outcome.message, data: { error: outcome.code } };
  const data = legacyData(outcome.data);
  return data === undefined ? { text: outcome.text } : { text: outcome.text, data };
}
