/**
 * execute: the ONE executor of the command verbs, shared by every front-end (chat through runner.ts, the
 * REST API, the CLI). Front-ends parse with grammar.ts, call this with the caller's roles, and render the
 * typed outcome. Every verb passes the one role check (authorize.ts) before anything is read or changed; a
 * user's mistake or a refusal comes back as `{ ok: false, code, message }`, never a throw. Errors that are not
 * the user's (a database or Temporal failure without a code) are thrown for the front-end to log.
 */
import { sql } from 'drizzle-orm';
import { actionOf, usage, type Command, type Verb } from './grammar';
import { authorize } from './authorize';
import type { AnyCommandOutcome, CommandData, DataOf, EndpointMatch } from './outcome';
import type { Db } from '../db/client';
import { addException, listExceptions, removeException } from '../db/cycles';
import { complianceSummary, isScoped, SEVERITIES } from '../db/read-model/compliance';
import { grantRole, revokeRole, rolesOf, type Role } from '../db/identities';
import { linkIdentity, listPeople, recordPersonEmail, unlinkIdentity, type PersonDto } from '../db/people';
import type { Channel, CycleScope, CycleStatus } from '../domain/cycle';
import type { IdentityDirectory } from '../domain/ports';
import { isCodedError } from '../domain/errors';
import type { CycleService } from '../services/cycle-service';

/** Who runs a command, with the roles they hold (read from identity_roles by the front-end), and the ports it uses. */
export interface ExecuteContext {
  identity: string;
  channel: Channel;
  roles: readonly Role[];
  service: CycleService;
  db: Db;
  /** Where `people link` asks a platform for the identity's e-mail when none is given (Slack users.info); optional. */
  directory?: IdentityDirectory;
}

function scopeText(s: CycleScope): string {
  const parts = [
    s.groups?.length ? `group:${s.groups.join(',')}` : '',
    s.tags?.length ? `tag:${s.tags.join(',')}` : '',
    s.osFamilies?.length ? `os:${s.osFamilies.join(',')}` : '',
    s.endpointIds?.length ? `endpoint:${s.endpointIds.join(',')}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(' ') : 'everything';
}

/** Several lines a person reads: stage, counts, approvals, waves, reasons. */
export function formatStatus(s: CycleStatus): string {
  const sev = Object.entries(s.bySeverity)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ');
  const lines = [
    `${s.cycleId} — ${s.stage}${s.paused ? ` (paused: ${s.pauseReason ?? ''})` : ''}${s.emergency ? ' [emergency]' : ''}`,
    `policy ${s.policyName}${s.policyVersion !== undefined ? ` v${s.policyVersion}` : ''}, scope ${scopeText(s.scope)}, requested by ${s.requestedBy}`,
    `${s.patches} patch(es) on ${s.endpoints} endpoint(s)${sev ? ` (${sev})` : ''}`,
  ];
  if (s.approvals.needed > 0 || s.approvals.records.length > 0) {
    lines.push(
      `approvals: ${s.approvals.received} of ${s.approvals.needed}${s.approvals.deadline ? `, deadline ${s.approvals.deadline}` : ''}${
        s.approvals.records.length
          ? ` — ${s.approvals.records.map((r) => `${r.identity} ${r.decision}d`).join(', ')}`
          : ''
      }`,
    );
  }
  if (s.test) lines.push(`test ring: ${s.test.state}, ${s.test.succeeded}/${s.test.total} ok, ${s.test.failed} failed`);
  for (const w of s.waves) {
    lines.push(
      `wave ${w.index} ${w.name}: ${w.state}, ${w.succeeded}/${w.total} ok, ${w.failed} failed, ${w.unreachable} unreachable${w.pending ? `, ${w.pending} pending` : ''}`,
    );
  }
  if (s.changeNumber) lines.push(`change ${s.changeNumber}${s.changeState ? ` (${s.changeState})` : ''}`);
  if (s.outcome) lines.push(`outcome: ${s.outcome}`);
  if (s.reasons.length) lines.push('reasons:', ...s.reasons.slice(-10).map((r) => `  - ${r}`));
  return lines.join('\n');
}

type Done<V extends Verb> = { text: string; data: DataOf<V> };
type Handler<V extends Verb> = (command: Extract<Command, { verb: V }>, ctx: ExecuteContext) => Promise<Done<V>>;

const NO_CYCLES = 'no cycles yet: start one with `start default`';

function exceptionText(x: {
  code: string;
  patchId: string | null;
  endpointId: string | null;
  groupName: string | null;
  expiresAt: string;
  reason: string;
}): string {
  const what = [
    x.patchId && `patch:${x.patchId}`,
    x.endpointId && `endpoint:${x.endpointId}`,
    x.groupName && `group:${x.groupName}`,
  ]
    .filter(Boolean)
    .join(' ');
  return `${x.code}  ${what}  until ${x.expiresAt.slice(0, 10)}  ${x.reason}`;
}

/** One handler per verb; the mapped type makes a missing verb a compile error. None checks roles: execute() does, first. */
const HANDLERS: { [V in Verb]: Handler<V> } = {
  help: async (c) => {
    const text = usage(c.topic);
    return { text, data: { verb: 'help', ...(c.topic ? { topic: c.topic } : {}), usage: text } };
  },
  status: async (c, { service }) => {
    let id = c.cycleId;
    if (!id) {
      const [latest] = await service.list({ limit: 1 });
      if (!latest) return { text: NO_CYCLES, data: { verb: 'status', status: null } };
      id = latest.cycleId;
    }
    const status = await service.status(id);
    return { text: formatStatus(status), data: { verb: 'status', status } };
  },
  cycles: async (_c, { service }) => {
    const cycles = await service.list({ limit: 20 });
    const text = cycles.length
      ? cycles
          .map(
            (c) =>
              `${c.cycleId}  ${c.stage.padEnd(14)} ${c.policyName}${c.emergency ? ' [emergency]' : ''}  by ${c.requestedBy}  ${c.createdAt}${c.changeNumber ? `  ${c.changeNumber}` : ''}`,
          )
          .join('\n')
      : NO_CYCLES;
    return { text, data: { verb: 'cycles', cycles } };
  },
  scan: async (c, ctx) => {
    const r = await ctx.service.scan(c.scope, ctx.identity);
    return {
      text: `scan started for ${scopeText(c.scope)} (${r.workflowId})`,
      data: { verb: 'scan', scope: c.scope, workflowId: r.workflowId },
    };
  },
  start: async (c, ctx) => {
    const r = await ctx.service.start({
      policyName: c.policy,
      scope: c.scope,
      requestedBy: ctx.identity,
      emergency: c.emergency,
    });
    return {
      text: `cycle ${r.cycleId} started under policy ${c.policy} for ${scopeText(c.scope)}${c.emergency ? ' (emergency)' : ''}`,
      data: {
        verb: 'start',
        cycleId: r.cycleId,
        workflowId: r.workflowId,
        policy: c.policy,
        scope: c.scope,
        emergency: c.emergency,
      },
    };
  },
  approve: async (c, ctx) => {
    const result = await ctx.service.approve(c.cycleId, { identity: ctx.identity, channel: ctx.channel });
    return {
      text: `approved ${c.cycleId}: ${result.approvalsReceived} of ${result.approvalsNeeded} — ${result.outcome}`,
      data: { verb: 'approve', cycleId: c.cycleId, result },
    };
  },
  reject: async (c, ctx) => {
    const result = await ctx.service.reject(c.cycleId, {
      identity: ctx.identity,
      channel: ctx.channel,
      reason: c.reason,
    });
    return {
      text: `rejected ${c.cycleId}: ${c.reason}`,
      data: { verb: 'reject', cycleId: c.cycleId, reason: c.reason, result },
    };
  },
  pause: async (c, ctx) => {
    await ctx.service.pause(c.cycleId, ctx.identity, c.reason);
    return {
      text: `pause requested for ${c.cycleId}: installs not yet handed out are held, those running finish; no further wave starts until resume`,
      data: { verb: 'pause', cycleId: c.cycleId, ...(c.reason ? { reason: c.reason } : {}) },
    };
  },
  resume: async (c, ctx) => {
    await ctx.service.resume(c.cycleId, ctx.identity);
    return { text: `resume requested for ${c.cycleId}`, data: { verb: 'resume', cycleId: c.cycleId } };
  },
  cancel: async (c, ctx) => {
    await ctx.service.cancel(c.cycleId, ctx.identity, c.reason);
    return {
      text: `cancel requested for ${c.cycleId}`,
      data: { verb: 'cancel', cycleId: c.cycleId, ...(c.reason ? { reason: c.reason } : {}) },
    };
  },
  rollback: async (c, ctx) => {
    await ctx.service.rollback(c.cycleId, ctx.identity, c.endpointId);
    return {
      text: c.endpointId
        ? `rollback of ${c.endpointId} requested in ${c.cycleId}`
        : `rollback of ${c.cycleId} requested`,
      data: { verb: 'rollback', cycleId: c.cycleId, ...(c.endpointId ? { endpointId: c.endpointId } : {}) },
    };
  },
  report: async (c, { db }) => {
    const scope: CycleScope = c.scope ?? {};
    const summary = await complianceSummary(db, { scope });
    const data = { verb: 'report' as const, scope, summary };
    const where = isScoped(scope) ? ` in ${scopeText(scope)}` : '';
    if (summary.endpoints === 0) return { text: `no endpoints${where}`, data };
    const bySeverity = SEVERITIES.filter((sv) => (summary.bySeverity[sv] ?? 0) > 0).map(
      (sv) => `${summary.bySeverity[sv]} ${sv}`,
    );
    const overdue = SEVERITIES.filter((sv) => (summary.overdueBySeverity[sv] ?? 0) > 0).map(
      (sv) => `${summary.overdueBySeverity[sv]} ${sv}`,
    );
    const text = [
      `compliance${where}: ${summary.compliancePct}% (${summary.compliant} of ${summary.endpoints} endpoints fully patched)`,
      `outstanding patches by severity: ${bySeverity.length ? bySeverity.join(', ') : 'none'}`,
      `past SLA: ${overdue.length ? overdue.join(', ') : 'none'}${summary.knownExploited ? `; ${summary.knownExploited} known exploited outstanding` : ''}`,
    ].join('\n');
    return { text, data };
  },
  endpoints: async (c, { db }) => {
    const like = `%${c.query}%`;
    const r = await db.execute<{ id: string; hostname: string; os_family: string; status: string }>(
      sql`select id, hostname, os_family, status from endpoints where hostname ilike ${like} or id ilike ${like} or ${c.query} = any(tags) order by hostname limit 50`,
    );
    const endpoints: EndpointMatch[] = r.rows.map((e) => ({
      id: e.id,
      hostname: e.hostname,
      osFamily: e.os_family,
      status: e.status,
    }));
    const text = endpoints.length
      ? endpoints.map((e) => `${e.id}  ${e.hostname}  ${e.osFamily}  ${e.status}`).join('\n')
      : `no endpoint matches "${c.query}"`;
    return { text, data: { verb: 'endpoints', query: c.query, endpoints } };
  },
  exceptions: async (c, ctx) => {
    if (c.action === 'list') {
      const exceptions = await listExceptions(ctx.db);
      return {
        text: exceptions.length ? exceptions.map(exceptionText).join('\n') : 'no active exceptions',
        data: { verb: 'exceptions', action: 'list', exceptions },
      };
    }
    if (c.action === 'add') {
      const exception = await addException(ctx.db, {
        ...(c.patchId ? { patchId: c.patchId } : {}),
        ...(c.endpointId ? { endpointId: c.endpointId } : {}),
        ...(c.group ? { groupName: c.group } : {}),
        reason: c.reason,
        expiresAt: new Date(c.until),
        by: ctx.identity,
      });
      return {
        text: `exception ${exception.code} added until ${exception.expiresAt.slice(0, 10)}`,
        data: { verb: 'exceptions', action: 'add', exception },
      };
    }
    await removeException(ctx.db, c.code, ctx.identity);
    return { text: `exception ${c.code} removed`, data: { verb: 'exceptions', action: 'remove', code: c.code } };
  },
  roles: async (c, ctx) => {
    if (c.action === 'list') {
      const identity = c.identity ?? ctx.identity;
      const grants = await rolesOf(ctx.db, identity);
      return {
        text: grants.length
          ? grants.map((r) => `${r.identity}  ${r.role}  ${r.groupName}`).join('\n')
          : `${identity} holds no roles`,
        data: { verb: 'roles', action: 'list', identity, grants },
      };
    }
    // The grammar gives grant/revoke an identity and a role always.
    const identity = c.identity!;
    const role = c.role!;
    const groupName = c.group ?? 'default';
    const grant = { identity, role, ...(c.group ? { groupName: c.group } : {}), by: ctx.identity };
    if (c.action === 'grant') {
      await grantRole(ctx.db, grant);
      return {
        text: `${identity} is now ${role} in ${groupName}`,
        data: { verb: 'roles', action: 'grant', identity, role, groupName },
      };
    }
    const removed = await revokeRole(ctx.db, grant);
    return {
      text: removed
        ? `${identity} is no longer ${role} in ${groupName}`
        : `${identity} did not hold ${role} in ${groupName}`,
      data: { verb: 'roles', action: 'revoke', identity, role, groupName, removed },
    };
  },
  people: (c, ctx) => peopleHandler(c, ctx),
};

/** The directory's e-mail for an identity, best effort: a failure or silence after 2.5 s is no address. */
async function directoryEmail(ctx: ExecuteContext, identity: string): Promise<string | undefined> {
  if (!ctx.directory) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const silence = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), 2_500);
  });
  try {
    return await Promise.race([ctx.directory.emailOf(identity), silence]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

function personText(p: PersonDto): string {
  return `${p.name}${p.email ? ` <${p.email}>` : ''}  ${p.identities.length ? p.identities.join(', ') : '(no identities)'}`;
}

/** `people …`: link, unlink and list the identities of people (db/people.ts audits each change). */
const peopleHandler: Handler<'people'> = async (c, ctx) => {
  if (c.action === 'list') {
    const people = await listPeople(ctx.db);
    return {
      text: people.length
        ? people.map(personText).join('\n')
        : 'no people yet: every identity is its own person (people link <person> <identity>)',
      data: { verb: 'people', action: 'list', people },
    };
  }
  if (c.action === 'link') {
    const { changed } = await linkIdentity(ctx.db, {
      person: c.person,
      identity: c.identity,
      ...(c.email ? { email: c.email } : {}),
      by: ctx.identity,
    });
    // No address given: the platform's, when it has one, becomes the person's (so their other identities link by e-mail).
    const found = c.email ? undefined : await directoryEmail(ctx, c.identity);
    const email =
      c.email ?? (found && (await recordPersonEmail(ctx.db, c.person, found, ctx.identity)) ? found : undefined);
    return {
      text: `${changed ? `${c.identity} is now ${c.person}; their votes count as one person's` : `${c.identity} was already ${c.person}`}${email && !c.email ? ` (e-mail ${email} from the platform)` : ''}`,
      data: {
        verb: 'people',
        action: 'link',
        person: c.person,
        identity: c.identity,
        ...(email ? { email } : {}),
        changed,
      },
    };
  }
  const person = await unlinkIdentity(ctx.db, c.identity, ctx.identity);
  return {
    text: person
      ? `${c.identity} is no longer ${person}; it is its own person again`
      : `${c.identity} was linked to nobody`,
    data: { verb: 'people', action: 'unlink', identity: c.identity, person },
  };
};

function handle<V extends Verb>(command: Extract<Command, { verb: V }>, ctx: ExecuteContext): Promise<Done<V>> {
  return (HANDLERS[command.verb as V] as Handler<V>)(command, ctx);
}

/** Runs one parsed command for `ctx.identity`: the role check, then the verb. */
export async function execute(command: Command, ctx: ExecuteContext): Promise<AnyCommandOutcome> {
  const allowed = authorize(command.verb, ctx.roles, ctx.identity, actionOf(command));
  if (!allowed.ok) return { ok: false, code: allowed.code, message: allowed.message };
  try {
    const done = await handle(command as Extract<Command, { verb: Verb }>, ctx);
    return { ok: true, data: done.data as CommandData, text: done.text };
  } catch (e) {
    if (isCodedError(e)) return { ok: false, code: e.code, message: e.message };
    throw e;
  }
}
