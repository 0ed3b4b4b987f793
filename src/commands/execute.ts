/**
 * executeCommand: the ONE executor of the admin/approver verbs, shared by the CLI and the chat bots
 * (they parse with commands/grammar.ts, then call this and render the result). Returns plain text for a
 * person plus data for renderers; a user's mistake comes back as text (with data.error), never a throw.
 */
import { sql } from 'drizzle-orm';
import { ADMIN_VERBS, APPROVER_VERBS, usage, type Command } from './grammar';
import type { Db } from '../db/client';
import { addException, listExceptions, removeException } from '../db/cycles';
import { complianceSummary, isScoped, SEVERITIES } from '../db/read-model/compliance';
import { grantRole, revokeRole, rolesOf, type Role } from '../db/identities';
import type { Channel, CycleScope, CycleStatus } from '../domain/cycle';
import { isCodedError } from '../domain/errors';
import type { CycleService } from '../services/cycle-service';

export interface CommandContext {
  identity: string;
  channel: Channel;
  service: CycleService;
  db: Db;
  isAdmin: boolean;
  isApprover: boolean;
}

export interface CommandResult {
  text: string;
  data?: unknown;
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
        s.approvals.records.length ? ` — ${s.approvals.records.map((r) => `${r.identity} ${r.decision}d`).join(', ')}` : ''
      }`,
    );
  }
  if (s.test) lines.push(`test ring: ${s.test.state}, ${s.test.succeeded}/${s.test.total} ok, ${s.test.failed} failed`);
  for (const w of s.waves) {
    lines.push(`wave ${w.index} ${w.name}: ${w.state}, ${w.succeeded}/${w.total} ok, ${w.failed} failed, ${w.unreachable} unreachable${w.pending ? `, ${w.pending} pending` : ''}`);
  }
  if (s.changeNumber) lines.push(`change ${s.changeNumber}${s.changeState ? ` (${s.changeState})` : ''}`);
  if (s.outcome) lines.push(`outcome: ${s.outcome}`);
  if (s.reasons.length) lines.push('reasons:', ...s.reasons.slice(-10).map((r) => `  - ${r}`));
  return lines.join('\n');
}

async function run(command: Command, ctx: CommandContext): Promise<CommandResult> {
  const svc = ctx.service;
  switch (command.verb) {
    case 'help':
      return { text: usage(command.topic) };
    case 'status': {
      let id = command.cycleId;
      if (!id) {
        const [latest] = await svc.list({ limit: 1 });
        if (!latest) return { text: 'no cycles yet: start one with `start default`' };
        id = latest.cycleId;
      }
      const status = await svc.status(id);
      return { text: formatStatus(status), data: status };
    }
    case 'cycles': {
      const list = await svc.list({ limit: 20 });
      if (list.length === 0) return { text: 'no cycles yet: start one with `start default`', data: [] };
      const lines = list.map((c) => `${c.cycleId}  ${c.stage.padEnd(14)} ${c.policyName}${c.emergency ? ' [emergency]' : ''}  by ${c.requestedBy}  ${c.createdAt}${c.changeNumber ? `  ${c.changeNumber}` : ''}`);
      return { text: lines.join('\n'), data: list };
    }
    case 'scan': {
      const r = await svc.scan(command.scope, ctx.identity);
      return { text: `scan started for ${scopeText(command.scope)} (${r.workflowId})`, data: r };
    }
    case 'start': {
      const r = await svc.start({ policyName: command.policy, scope: command.scope, requestedBy: ctx.identity, emergency: command.emergency });
      return { text: `cycle ${r.cycleId} started under policy ${command.policy} for ${scopeText(command.scope)}${command.emergency ? ' (emergency)' : ''}`, data: r };
    }
    case 'approve': {
      const r = await svc.approve(command.cycleId, { identity: ctx.identity, channel: ctx.channel });
      return { text: `approved ${command.cycleId}: ${r.approvalsReceived} of ${r.approvalsNeeded} — ${r.outcome}`, data: r };
    }
    case 'reject': {
      const r = await svc.reject(command.cycleId, { identity: ctx.identity, channel: ctx.channel, reason: command.reason });
      return { text: `rejected ${command.cycleId}: ${command.reason}`, data: r };
    }
    case 'pause':
      await svc.pause(command.cycleId, ctx.identity, command.reason);
      return { text: `pause requested for ${command.cycleId}: installs not yet handed out are held, those running finish; no further wave starts until resume` };
    case 'resume':
      await svc.resume(command.cycleId, ctx.identity);
      return { text: `resume requested for ${command.cycleId}` };
    case 'cancel':
      await svc.cancel(command.cycleId, ctx.identity, command.reason);
      return { text: `cancel requested for ${command.cycleId}` };
    case 'rollback':
      await svc.rollback(command.cycleId, ctx.identity, command.endpointId);
      return { text: command.endpointId ? `rollback of ${command.endpointId} requested in ${command.cycleId}` : `rollback of ${command.cycleId} requested` };
    case 'report': {
      const scope = command.scope ?? {};
      const c = await complianceSummary(ctx.db, { scope });
      const bySeverity = SEVERITIES.filter((sv) => (c.bySeverity[sv] ?? 0) > 0).map((sv) => `${c.bySeverity[sv]} ${sv}`);
      const overdue = SEVERITIES.filter((sv) => (c.overdueBySeverity[sv] ?? 0) > 0).map((sv) => `${c.overdueBySeverity[sv]} ${sv}`);
      const where = isScoped(scope) ? ` in ${scopeText(scope)}` : '';
      if (c.endpoints === 0) return { text: `no endpoints${where}`, data: c };
      return {
        text: [
          `compliance${where}: ${c.compliancePct}% (${c.compliant} of ${c.endpoints} endpoints fully patched)`,
          `outstanding patches by severity: ${bySeverity.length ? bySeverity.join(', ') : 'none'}`,
          `past SLA: ${overdue.length ? overdue.join(', ') : 'none'}${c.knownExploited ? `; ${c.knownExploited} known exploited outstanding` : ''}`,
        ].join('\n'),
        data: c,
      };
    }
    case 'endpoints': {
      const like = `%${command.query}%`;
      const r = await ctx.db.execute<{ id: string; hostname: string; os_family: string; status: string }>(
        sql`select id, hostname, os_family, status from endpoints where hostname ilike ${like} or id ilike ${like} or ${command.query} = any(tags) order by hostname limit 50`,
      );
      return { text: r.rows.length ? r.rows.map((e) => `${e.id}  ${e.hostname}  ${e.os_family}  ${e.status}`).join('\n') : `no endpoint matches "${command.query}"`, data: r.rows };
    }
    case 'exceptions': {
      if (command.action === 'list') {
        const list = await listExceptions(ctx.db);
        return {
          text: list.length ? list.map((x) => `${x.code}  ${[x.patchId && `patch:${x.patchId}`, x.endpointId && `endpoint:${x.endpointId}`, x.groupName && `group:${x.groupName}`].filter(Boolean).join(' ')}  until ${x.expiresAt.slice(0, 10)}  ${x.reason}`).join('\n') : 'no active exceptions',
          data: list,
        };
      }
      if (command.action === 'add') {
        const x = await addException(ctx.db, {
          ...(command.patchId ? { patchId: command.patchId } : {}),
          ...(command.endpointId ? { endpointId: command.endpointId } : {}),
          ...(command.group ? { groupName: command.group } : {}),
          reason: command.reason,
          expiresAt: new Date(command.until),
          by: ctx.identity,
        });
        return { text: `exception ${x.code} added until ${x.expiresAt.slice(0, 10)}`, data: x };
      }
      await removeException(ctx.db, command.code, ctx.identity);
      return { text: `exception ${command.code} removed` };
    }
    case 'roles': {
      if (command.action === 'list') {
        const id = command.identity ?? ctx.identity;
        const roles = await rolesOf(ctx.db, id);
        return { text: roles.length ? roles.map((r) => `${r.identity}  ${r.role}  ${r.groupName}`).join('\n') : `${id} holds no roles`, data: roles };
      }
      const grant = { identity: command.identity!, role: command.role as Role, ...(command.group ? { groupName: command.group } : {}), by: ctx.identity };
      if (command.action === 'grant') {
        await grantRole(ctx.db, grant);
        return { text: `${grant.identity} is now ${grant.role} in ${command.group ?? 'default'}` };
      }
      const removed = await revokeRole(ctx.db, grant);
      return { text: removed ? `${grant.identity} is no longer ${grant.role} in ${command.group ?? 'default'}` : `${grant.identity} did not hold ${grant.role} in ${command.group ?? 'default'}` };
    }
  }
}

export async function executeCommand(command: Command, ctx: CommandContext): Promise<CommandResult> {
  if (ADMIN_VERBS.has(command.verb) && !ctx.isAdmin) {
    return { text: `only admins may use "${command.verb}"; ask an admin to run it, or to grant you the role (roles grant ${ctx.identity} admin)`, data: { error: 'FORBIDDEN' } };
  }
  if (APPROVER_VERBS.has(command.verb) && !ctx.isApprover && !ctx.isAdmin) {
    return { text: `only approvers may ${command.verb}; ask an admin to grant you the role (roles grant ${ctx.identity} approver <group>)`, data: { error: 'FORBIDDEN' } };
  }
  try {
    return await run(command, ctx);
  } catch (e) {
    if (isCodedError(e)) return { text: e.message, data: { error: e.code } };
    throw e;
  }
}
