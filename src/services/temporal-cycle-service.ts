/**
 * createCycleService: the one CycleService every front-end drives cycles through (CLI, Slack, Teams,
 * dashboard, ServiceNow webhook). Talks to workflows through the Temporal client; reads Postgres. It is where a
 * start or a vote enters the workflow, so it resolves the person behind the identity (db/people.ts) and carries it in
 * the payload: the workflow counts and compares people without reading the database.
 */
import { randomBytes } from 'node:crypto';
import {
  ScheduleAlreadyRunning,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import type { Db } from '../db/client';
import { findCycleByChange, getCycleRow, listCycleRows } from '../db/cycles';
import { personOf, personWithIdentities } from '../db/people';
import { getPolicy, listPolicies } from '../db/policies';
import {
  TERMINAL_STAGES,
  workflowIdForCycle,
  type ApprovalResult,
  type ApprovalVote,
  type CycleScope,
  type CycleStatus,
} from '../domain/cycle';
import { CodedError, ErrorCode } from '../domain/errors';
import { TaskQueue } from '../temporal/task-queues';
import type { FleetScanInput } from '../workflows/fleet-scan';
import {
  approveCycleUpdate,
  cancelCycleSignal,
  changeRequestStateSignal,
  cycleStatusQuery,
  pauseCycleSignal,
  rejectCycleUpdate,
  resumeCycleSignal,
  rollbackCycleSignal,
} from '../workflows/messages';
import type { patchCycleWorkflow } from '../workflows/patch-cycle';
import type { CycleListItem, CycleService, StartCycleInput } from './cycle-service';

export interface CycleServiceDeps {
  client: Client;
  db: Db;
  taskQueue?: string;
}

/** PC-20261127-1a2b3c: sortable by day, short enough to type in chat. */
export function newCycleId(now = new Date()): string {
  const day = now.toISOString().slice(0, 10).replace(/-/g, '');
  return `PC-${day}-${randomBytes(3).toString('hex')}`;
}

function notFound(cycleId: string): CodedError {
  return new CodedError(ErrorCode.NotFound, `no cycle ${cycleId} (see \`patchops cycles\` for the list)`);
}

function isNotFound(e: unknown): boolean {
  return (
    e instanceof WorkflowNotFoundError ||
    (e instanceof Error && /not found/i.test(e.message) && e.name !== 'CodedError')
  );
}

export function createCycleService(deps: CycleServiceDeps): CycleService {
  const { client, db } = deps;
  const taskQueue = deps.taskQueue ?? TaskQueue.cycles;

  const handleOf = (cycleId: string) =>
    client.workflow.getHandle<typeof patchCycleWorkflow>(workflowIdForCycle(cycleId));

  /** The cycle must exist (DB row) or at least its workflow must. Returns its stage when finished. */
  async function ensureCycle(cycleId: string): Promise<{ finished: string | null }> {
    if (!cycleId || !/^[\w.:-]{1,120}$/.test(cycleId))
      throw new CodedError(
        ErrorCode.InvalidInput,
        `"${cycleId}" is not a cycle id (they look like PC-20261127-1a2b3c)`,
      );
    const row = await getCycleRow(db, cycleId);
    if (row) return { finished: TERMINAL_STAGES.includes(row.stage) ? row.stage : null };
    try {
      await handleOf(cycleId).describe();
      return { finished: null };
    } catch (e) {
      if (isNotFound(e)) throw notFound(cycleId);
      throw e;
    }
  }

  async function signal(cycleId: string, send: () => Promise<void>): Promise<void> {
    const { finished } = await ensureCycle(cycleId);
    if (finished) throw new CodedError(ErrorCode.Conflict, `cycle ${cycleId} has already finished (${finished})`);
    try {
      await send();
    } catch (e) {
      if (isNotFound(e)) throw new CodedError(ErrorCode.Conflict, `cycle ${cycleId} has already finished`);
      throw e;
    }
  }

  async function vote(cycleId: string, v: ApprovalVote, kind: 'approve' | 'reject'): Promise<ApprovalResult> {
    const { finished } = await ensureCycle(cycleId);
    if (finished) throw new CodedError(ErrorCode.ApprovalRefused, `approvals are not open: the cycle is ${finished}`);
    if (kind === 'reject' && !v.reason?.trim())
      throw new CodedError(ErrorCode.InvalidInput, 'a rejection needs a reason');
    // The person is resolved here, where the vote enters, and never taken from the caller: the workflow cannot read
    // the database, so it counts and compares the person this payload carries (decisions.md, "People vote").
    const { person: _person, personIdentities: _identities, ...rest } = v;
    const who = await personWithIdentities(db, v.identity.trim());
    const vote: ApprovalVote = { ...rest, person: who.person, personIdentities: who.identities };
    try {
      return await handleOf(cycleId).executeUpdate(kind === 'approve' ? approveCycleUpdate : rejectCycleUpdate, {
        args: [vote],
      });
    } catch (e) {
      if (e instanceof WorkflowUpdateFailedError)
        throw new CodedError(ErrorCode.ApprovalRefused, e.cause?.message ?? e.message, { cause: e });
      if (isNotFound(e))
        throw new CodedError(ErrorCode.ApprovalRefused, `approvals are not open: cycle ${cycleId} has finished`, {
          cause: e,
        });
      throw e;
    }
  }

  return {
    async start(input: StartCycleInput) {
      if (!input.requestedBy?.includes(':'))
        throw new CodedError(ErrorCode.InvalidInput, 'requestedBy must be an identity such as cli:alice or slack:U123');
      if (input.notBefore && Number.isNaN(Date.parse(input.notBefore)))
        throw new CodedError(ErrorCode.InvalidInput, `notBefore "${input.notBefore}" is not a date/time`);
      await getPolicy(db, input.policyName); // NOT_FOUND naming the known policies
      const requestedByPerson = await personOf(db, input.requestedBy);
      const cycleId = newCycleId();
      const workflowId = workflowIdForCycle(cycleId);
      try {
        await client.workflow.start<typeof patchCycleWorkflow>('patchCycleWorkflow', {
          taskQueue,
          workflowId,
          args: [
            {
              cycleId,
              policyName: input.policyName,
              scope: input.scope,
              requestedBy: input.requestedBy,
              requestedByPerson,
              ...(input.emergency ? { emergency: true } : {}),
              ...(input.notBefore ? { notBefore: input.notBefore } : {}),
            },
          ],
        });
      } catch (e) {
        if (e instanceof WorkflowExecutionAlreadyStartedError)
          throw new CodedError(ErrorCode.Conflict, `cycle ${cycleId} already exists; try again`, { cause: e });
        throw e;
      }
      return { cycleId, workflowId };
    },

    async status(cycleId: string): Promise<CycleStatus> {
      const row = await getCycleRow(db, cycleId);
      if (row && TERMINAL_STAGES.includes(row.stage) && row.summary) return row.summary as unknown as CycleStatus;
      try {
        return await handleOf(cycleId).query(cycleStatusQuery);
      } catch (e) {
        if (row?.summary) return row.summary as unknown as CycleStatus;
        if (isNotFound(e)) throw notFound(cycleId);
        throw e;
      }
    },

    async list(options): Promise<CycleListItem[]> {
      const rows = await listCycleRows(db, options);
      return rows.map((r) => ({
        cycleId: r.cycleId,
        policyName: r.policyName,
        stage: r.stage,
        emergency: r.emergency,
        requestedBy: r.requestedBy,
        changeNumber: r.changeNumber,
        createdAt: r.createdAt,
        updatedAt: r.updatedAt,
      }));
    },

    approve: (cycleId, v) => vote(cycleId, v, 'approve'),
    reject: (cycleId, v) => vote(cycleId, v, 'reject'),
    pause: (cycleId, by, reason) =>
      signal(cycleId, () => handleOf(cycleId).signal(pauseCycleSignal, { by, ...(reason ? { reason } : {}) })),
    resume: (cycleId, by) => signal(cycleId, () => handleOf(cycleId).signal(resumeCycleSignal, { by })),
    cancel: (cycleId, by, reason) =>
      signal(cycleId, () => handleOf(cycleId).signal(cancelCycleSignal, { by, ...(reason ? { reason } : {}) })),
    rollback: (cycleId, by, endpointId) =>
      signal(cycleId, () =>
        handleOf(cycleId).signal(rollbackCycleSignal, { by, ...(endpointId ? { endpointId } : {}) }),
      ),

    async changeRequestState(cycleIdOrChangeNumber, event) {
      const byId = await getCycleRow(db, cycleIdOrChangeNumber);
      const row =
        byId ??
        (await findCycleByChange(db, cycleIdOrChangeNumber)) ??
        (await findCycleByChange(db, event.changeNumber));
      if (!row)
        throw new CodedError(
          ErrorCode.NotFound,
          `no cycle owns change ${event.changeNumber} (correlation id ${cycleIdOrChangeNumber})`,
        );
      // Only the cycle's own change moves it: a change that merely names the cycle (correlation_id) does not.
      if (row.changeNumber !== event.changeNumber) {
        throw new CodedError(
          ErrorCode.Conflict,
          `change ${event.changeNumber} is not the change of cycle ${row.cycleId} (${row.changeNumber ?? 'it has no change yet'}): ignored`,
        );
      }
      await signal(row.cycleId, () => handleOf(row.cycleId).signal(changeRequestStateSignal, event));
    },

    async scan(scope: CycleScope, requestedBy: string) {
      const workflowId = `fleet-scan:${new Date().toISOString().replace(/[:.]/g, '')}-${randomBytes(2).toString('hex')}`;
      const input: FleetScanInput = { scope, requestedBy };
      await client.workflow.start('fleetScanWorkflow', { taskQueue, workflowId, args: [input] });
      return { workflowId };
    },
  };
}

/**
 * Creates or updates (idempotent) a Temporal Schedule `fleet-scan:<policy>` for every policy with
 * schedule.scanCron; returns the schedule ids.
 */
export async function ensureScanSchedules(
  client: Client,
  db: Db,
  taskQueue: string = TaskQueue.cycles,
): Promise<string[]> {
  const ids: string[] = [];
  for (const p of await listPolicies(db)) {
    const { policy } = await getPolicy(db, p.name);
    const cron = policy.schedule.scanCron;
    if (!cron) continue;
    const scheduleId = `fleet-scan:${policy.name}`;
    const input: FleetScanInput = {
      scope: { groups: policy.scope.groups, tags: policy.scope.tags, osFamilies: policy.scope.osFamilies },
      requestedBy: `system:schedule:${policy.name}`,
      unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
      pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
    };
    const action = {
      type: 'startWorkflow' as const,
      workflowType: 'fleetScanWorkflow',
      taskQueue,
      args: [input],
      workflowId: scheduleId,
    };
    try {
      await client.schedule.create({ scheduleId, spec: { cronExpressions: [cron] }, action });
    } catch (e) {
      if (!(e instanceof ScheduleAlreadyRunning)) throw e;
      await client.schedule
        .getHandle(scheduleId)
        .update((prev) => ({ ...prev, spec: { cronExpressions: [cron] }, action }));
    }
    ids.push(scheduleId);
  }
  return ids;
}

/** The CycleService of a running `patchops up` (for the server's routes: chat, dashboard, webhooks). */
export function cycleServiceFor(
  running: { temporal: { client: Client }; db: { database: { db: Db } } },
  taskQueue?: string,
): CycleService {
  return createCycleService({
    client: running.temporal.client,
    db: running.db.database.db,
    ...(taskQueue ? { taskQueue } : {}),
  });
}
