/**
 * ServiceNowChangeDesk: the ChangeDesk port on a ServiceNow instance.
 *
 * - open: looks the change up by correlation_id (= cycle id) first, so a retried open returns the change
 *   it already made; otherwise creates it through the Change Management API (normal / emergency /
 *   standard/{template}), then attaches the affected CIs (task_ci) whose cmdb_ci name matches an
 *   endpoint hostname. Only the create must succeed: the CIs and the assignment group lookup are best
 *   effort (a failure is logged, and for CIs written to the change as a work note).
 * - get: the change's state and approval mapped to ChangeRequestStateEvent (null when unknown); a
 *   rejection carries the approver's comment, a cancellation its close notes.
 * - close: Implement (when still Scheduled) → Review → Closed with close_code and close_notes. Closing a
 *   change that never got approved cancels it instead (ServiceNow does not let it be closed).
 * - wave tasks: change tasks per wave, idempotent by short description.
 */
import type { ChangeRequestStateEvent } from '../../domain/cycle';
import { CodedError, ErrorCode } from '../../domain/errors';
import type { ChangeDesk, ChangeRef, ChangeRequestInput, CloseCode } from '../../domain/ports';
import type { Logger } from '../../logging';
import { fromSnDateTime, snValue, toSnDateTime, type ServiceNowClient, type SnRecord } from './client';

export const SN_STATES: Record<string, ChangeRequestStateEvent['state']> = {
  '-5': 'new',
  '-4': 'assess',
  '-3': 'authorize',
  '-2': 'scheduled',
  '-1': 'implement',
  '0': 'review',
  '3': 'closed',
  '4': 'canceled',
};
const STATE_VALUES = Object.fromEntries(Object.entries(SN_STATES).map(([k, v]) => [v, k])) as Record<
  ChangeRequestStateEvent['state'],
  string
>;
const RISK_VALUES: Record<ChangeRequestInput['risk'], string> = { high: '2', moderate: '3', low: '4' };
const SYS_ID = /^[0-9a-f]{32}$/;

/** Maps a ServiceNow state (numeric value, or its label) to the event's state; undefined if unknown. */
export function mapServiceNowState(value: string | undefined): ChangeRequestStateEvent['state'] | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (SN_STATES[v]) return SN_STATES[v];
  const lower = v.toLowerCase().replace('cancelled', 'canceled');
  return (Object.values(SN_STATES) as string[]).includes(lower)
    ? (lower as ChangeRequestStateEvent['state'])
    : undefined;
}

export function mapServiceNowApproval(value: string | undefined): ChangeRequestStateEvent['approval'] | undefined {
  const v = (value ?? '').trim().toLowerCase().replace(/_/g, ' ');
  if (v === 'requested' || v === 'approved' || v === 'rejected' || v === 'not requested') return v;
  if (v === 'not yet requested') return 'not requested';
  return undefined;
}

export interface WaveTaskInput {
  wave: number;
  name: string;
  plannedStart?: string;
  plannedEnd?: string;
  description?: string;
}

export interface ServiceNowChangeDeskOptions {
  client: ServiceNowClient;
  logger?: Logger;
  /** Default assignment group (name or sys_id) when the input names none. */
  assignmentGroup?: string;
}

const CHANGE_FIELDS = [
  'sys_id',
  'number',
  'state',
  'approval',
  'start_date',
  'end_date',
  'sys_updated_by',
  'close_notes',
  'correlation_id',
  'type',
];

export class ServiceNowChangeDesk implements ChangeDesk {
  private readonly client: ServiceNowClient;
  private readonly sysIds = new Map<string, string>();

  constructor(private readonly o: ServiceNowChangeDeskOptions) {
    this.client = o.client;
  }

  async open(input: ChangeRequestInput): Promise<ChangeRef> {
    if (!input.cycleId)
      throw new CodedError(ErrorCode.InvalidInput, 'A change request needs the cycle id (its correlation_id).');
    const existing = await this.findByCorrelation(input.cycleId);
    if (existing) {
      this.o.logger?.info(
        { cycleId: input.cycleId, number: snValue(existing.number) },
        'change request already exists for this cycle',
      );
      return this.ref(existing);
    }

    const body: Record<string, unknown> = {
      short_description: input.shortDescription.slice(0, 160),
      description: withEndpoints(input.description, input.configurationItems),
      risk: RISK_VALUES[input.risk],
      impact: String(input.impact),
      implementation_plan: input.implementationPlan,
      backout_plan: input.backoutPlan,
      test_plan: input.testPlan,
      correlation_id: input.cycleId,
      correlation_display: 'patchops',
      category: 'Software',
      justification: input.shortDescription,
    };
    if (input.plannedStart) body.start_date = toSnDateTime(input.plannedStart);
    if (input.plannedEnd) body.end_date = toSnDateTime(input.plannedEnd);
    const group = await this.resolveGroup(input.assignmentGroup ?? this.o.assignmentGroup);
    if (group) body.assignment_group = group;

    let templateSysId: string | undefined;
    if (input.type === 'standard') templateSysId = await this.resolveTemplate(input.standardTemplate);
    const created = await this.client.createChange(input.type, body, templateSysId);
    const ref = this.ref(created);
    this.o.logger?.info({ cycleId: input.cycleId, number: ref.number, type: input.type }, 'change request created');

    if (input.configurationItems.length > 0) await this.enrichWithCis(ref, input.configurationItems);
    return ref;
  }

  /**
   * Best effort: the affected CIs are an enrichment of a change that already exists. A CMDB the account may
   * not read (403, an ACL, a restricted table, a 400) leaves the change as it is, with a work note saying why
   * the CIs are missing; only a failure to write that note too is logged and swallowed.
   */
  private async enrichWithCis(ref: ChangeRef, hostnames: string[]): Promise<void> {
    let cis: string[];
    try {
      cis = await this.attachCis(ref.sysId, hostnames);
    } catch (e) {
      const why = (e as Error).message;
      this.o.logger?.warn(
        { number: ref.number, err: e },
        'affected CIs could not be attached; the change stands without them',
      );
      try {
        await this.client.updateChange(ref.sysId, {
          work_notes: `patchops: the affected CIs could not be attached (${hostnames.length} endpoint(s) are listed in the description): ${why}`,
        });
      } catch (noteErr) {
        this.o.logger?.warn(
          { number: ref.number, err: noteErr },
          'the work note about the missing CIs could not be added either',
        );
      }
      return;
    }
    try {
      await this.client.updateChange(ref.sysId, {
        ...(cis.length > 0 ? { cmdb_ci: cis[0] } : {}),
        work_notes: `patchops: ${cis.length} of ${hostnames.length} endpoint(s) matched a CMDB CI by name and are listed as affected CIs.`,
      });
    } catch (e) {
      this.o.logger?.warn({ number: ref.number, err: e }, 'the CI summary could not be written to the change');
    }
  }

  async get(changeNumber: string): Promise<ChangeRequestStateEvent | null> {
    const rec = await this.findByNumber(changeNumber);
    if (!rec) return null;
    return this.toEvent(rec);
  }

  async addWorkNote(changeNumber: string, note: string): Promise<void> {
    const sysId = await this.mustSysId(changeNumber);
    await this.client.updateChange(sysId, { work_notes: note });
  }

  async close(changeNumber: string, closeCode: CloseCode, closeNotes: string): Promise<void> {
    const rec = await this.findByNumber(changeNumber);
    if (!rec)
      throw new CodedError(
        ErrorCode.NotFound,
        `ServiceNow change ${changeNumber} does not exist: it cannot be closed.`,
      );
    const sysId = snValue(rec.sys_id)!;
    let state = SN_STATES[snValue(rec.state) ?? ''];
    if (state === 'closed' || state === 'canceled') return; // already final: closing again is a no-op
    if (state === 'new' || state === 'assess' || state === 'authorize') {
      // Never approved: ServiceNow cannot close it; cancel it with the notes instead.
      await this.client.updateChange(sysId, {
        state: STATE_VALUES.canceled,
        close_notes: closeNotes,
        work_notes: `Cancelled by patchops (${closeCode}): ${closeNotes}`,
      });
      return;
    }
    if (state === 'scheduled') {
      await this.client.updateChange(sysId, { state: STATE_VALUES.implement });
      state = 'implement';
    }
    if (state === 'implement') await this.client.updateChange(sysId, { state: STATE_VALUES.review });
    await this.client.updateChange(sysId, {
      state: STATE_VALUES.closed,
      close_code: closeCode,
      close_notes: closeNotes,
    });
  }

  /** Opens a change task for a wave; a task with the same short description is reused. Returns the task number. */
  async openWaveTask(changeNumber: string, task: WaveTaskInput): Promise<string> {
    const sysId = await this.mustSysId(changeNumber);
    const short = `Wave ${task.wave}: ${task.name}`;
    const existing = (await this.client.listChangeTasks(sysId)).find((t) => snValue(t.short_description) === short);
    if (existing) return snValue(existing.number)!;
    const body: Record<string, unknown> = {
      short_description: short,
      description: task.description ?? short,
      change_task_type: 'implementation',
    };
    if (task.plannedStart) body.planned_start_date = toSnDateTime(task.plannedStart);
    if (task.plannedEnd) body.planned_end_date = toSnDateTime(task.plannedEnd);
    return snValue((await this.client.createChangeTask(sysId, body)).number)!;
  }

  /** Closes a wave's change task: 3 = Closed Complete, 4 = Closed Incomplete. */
  async closeWaveTask(changeNumber: string, wave: number, successful: boolean, notes: string): Promise<void> {
    const sysId = await this.mustSysId(changeNumber);
    const task = (await this.client.listChangeTasks(sysId)).find((t) =>
      (snValue(t.short_description) ?? '').startsWith(`Wave ${wave}:`),
    );
    if (!task)
      throw new CodedError(ErrorCode.NotFound, `ServiceNow change ${changeNumber} has no task for wave ${wave}.`);
    await this.client.updateChangeTask(sysId, snValue(task.sys_id)!, {
      state: successful ? '3' : '4',
      close_notes: notes,
      work_notes: notes,
    });
  }

  /** Health: credentials and reachability. */
  ping(): Promise<void> {
    return this.client.ping();
  }

  // ---------------------------------------------------------------- internals

  private async findByCorrelation(cycleId: string): Promise<SnRecord | undefined> {
    const page = await this.client.tableQuery('change_request', {
      query: `correlation_id=${cycleId}^ORDERBYsys_created_on`,
      fields: CHANGE_FIELDS,
      limit: 1,
    });
    return page.records[0];
  }

  private async findByNumber(changeNumber: string): Promise<SnRecord | undefined> {
    const page = await this.client.tableQuery('change_request', {
      query: `number=${changeNumber}`,
      fields: CHANGE_FIELDS,
      limit: 1,
    });
    const rec = page.records[0];
    if (rec) this.sysIds.set(changeNumber, snValue(rec.sys_id)!);
    return rec;
  }

  private async mustSysId(changeNumber: string): Promise<string> {
    const cached = this.sysIds.get(changeNumber);
    if (cached) return cached;
    const rec = await this.findByNumber(changeNumber);
    if (!rec) throw new CodedError(ErrorCode.NotFound, `ServiceNow change ${changeNumber} does not exist.`);
    return snValue(rec.sys_id)!;
  }

  private async toEvent(rec: SnRecord): Promise<ChangeRequestStateEvent> {
    const number = snValue(rec.number)!;
    const state = mapServiceNowState(snValue(rec.state));
    if (!state)
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        `ServiceNow change ${number} has state "${snValue(rec.state)}", which patchops does not know.`,
      );
    const approval = mapServiceNowApproval(snValue(rec.approval));
    const event: ChangeRequestStateEvent = { changeNumber: number, state };
    if (approval) event.approval = approval;
    const start = fromSnDateTime(snValue(rec.start_date));
    const end = fromSnDateTime(snValue(rec.end_date));
    if (start) event.plannedStart = start;
    if (end) event.plannedEnd = end;
    const by = snValue(rec.sys_updated_by);
    if (by) event.by = `servicenow:${by}`;
    if (state === 'canceled' && snValue(rec.close_notes)) event.reason = snValue(rec.close_notes);
    if (approval === 'rejected') {
      const rejections = await this.client.tableQuery('sysapproval_approver', {
        query: `sysapproval=${snValue(rec.sys_id)}^state=rejected^ORDERBYDESCsys_updated_on`,
        fields: ['comments', 'approver'],
        limit: 1,
      });
      const r = rejections.records[0];
      if (r && snValue(r.comments)) event.reason = snValue(r.comments);
      if (r && snValue(r.approver)) event.by = `servicenow:${snValue(r.approver)}`;
    }
    return event;
  }

  private ref(rec: SnRecord): ChangeRef {
    const sysId = snValue(rec.sys_id);
    const number = snValue(rec.number);
    if (!sysId || !number)
      throw new CodedError(
        ErrorCode.IntegrationFailed,
        'ServiceNow returned a change request without sys_id or number.',
      );
    this.sysIds.set(number, sysId);
    return {
      number,
      sysId,
      state: mapServiceNowState(snValue(rec.state)) ?? 'new',
      url: `${this.client.instanceUrl}/nav_to.do?uri=change_request.do?sys_id=${sysId}`,
    };
  }

  private async resolveGroup(group: string | undefined): Promise<string | undefined> {
    if (!group) return undefined;
    if (SYS_ID.test(group)) return group;
    let id: string | undefined;
    try {
      const page = await this.client.tableQuery('sys_user_group', {
        query: `name=${group}`,
        fields: ['sys_id'],
        limit: 1,
      });
      id = snValue(page.records[0]?.sys_id);
    } catch (e) {
      // The group is a routing hint: a change without one still reaches the change managers' queue.
      this.o.logger?.warn(
        { group, err: e },
        'ServiceNow assignment group lookup failed; the change is created without one',
      );
      return undefined;
    }
    if (!id)
      this.o.logger?.warn(
        { group },
        'ServiceNow assignment group not found by name; the change is created without one',
      );
    return id;
  }

  private async resolveTemplate(template: string | undefined): Promise<string> {
    if (!template)
      throw new CodedError(
        ErrorCode.PolicyInvalid,
        'The policy asks for a standard change but names no standard change template: set its template (sys_id or name).',
      );
    if (SYS_ID.test(template)) return template;
    const page = await this.client.tableQuery('std_change_record_producer', {
      query: `name=${template}`,
      fields: ['sys_id'],
      limit: 1,
    });
    const id = snValue(page.records[0]?.sys_id);
    if (!id)
      throw new CodedError(
        ErrorCode.PolicyInvalid,
        `ServiceNow has no standard change template named "${template}": check the policy's template name.`,
      );
    return id;
  }

  /** Adds task_ci rows for CIs whose name matches a hostname; returns their sys_ids. */
  private async attachCis(changeSysId: string, hostnames: string[]): Promise<string[]> {
    const names = [...new Set(hostnames.filter((h) => h && !/[\^,=]/.test(h)))];
    if (names.length === 0) return [];
    const found: string[] = [];
    for (let i = 0; i < names.length; i += 100) {
      const chunk = names.slice(i, i + 100);
      const cis = await this.client.tableQueryAll('cmdb_ci', {
        query: `nameIN${chunk.join(',')}`,
        fields: ['sys_id', 'name'],
        limit: 200,
      });
      found.push(...cis.map((c) => snValue(c.sys_id)!).filter(Boolean));
    }
    const already = new Set(
      (await this.client.tableQueryAll('task_ci', { query: `task=${changeSysId}`, fields: ['ci_item'] })).map((r) =>
        snValue(r.ci_item),
      ),
    );
    for (const ci of found)
      if (!already.has(ci)) await this.client.tableCreate('task_ci', { task: changeSysId, ci_item: ci });
    this.o.logger?.info({ changeSysId, matched: found.length, of: names.length }, 'affected CIs attached');
    return found;
  }
}

/** The description, followed by the endpoints it touches (the first 200 by name). */
export function withEndpoints(description: string, hostnames: string[]): string {
  if (hostnames.length === 0) return description;
  const shown = [...hostnames].sort().slice(0, 200);
  const more = hostnames.length > shown.length ? `\n… and ${hostnames.length - shown.length} more` : '';
  return `${description}\n\nEndpoints (${hostnames.length}):\n${shown.join('\n')}${more}`;
}
