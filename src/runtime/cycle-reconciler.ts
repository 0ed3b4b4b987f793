/**
 * The cycle reconciler: a cycle whose workflow closed without recording a terminal stage (terminated from the
 * Temporal UI or CLI, timed out, or failed in a way the workflow could not catch) would otherwise show its last
 * stage forever. Every sweep it asks Temporal about each cycle the database still calls active; for each one
 * whose workflow is closed it does what the workflow's own ending does: the change closed `unsuccessful` (or
 * cancelled) with the reason, the summary posted to the cycle's thread and card and mailed, and the terminal
 * stage recorded with the reason (cycle row, stage event, audit log). The side effects go first and the stage
 * last, so a sweep cut short is finished by the next one; chat and mail are keyed by stage and text, so they
 * are not posted twice.
 */
import type { Client } from '@temporalio/client';
import type { CycleActivities } from '../activities/cycle';
import type { Db } from '../db/client';
import { listCycleRows, recordStageChange, type CycleRow } from '../db/cycles';
import { getPolicy } from '../db/policies';
import { CycleStage, type CycleStatus } from '../domain/cycle';
import type { Logger } from '../logging';

export interface CycleReconcilerDeps {
  db: Db;
  client: Client;
  /** The worker's own cycle activities: the same change desk, chat and mailer the workflow's ending uses. */
  activities: Pick<CycleActivities, 'closeChange' | 'sendReport' | 'notifyStage'>;
  logger: Logger;
  now?: () => Date;
}

export interface ReconciledCycle {
  cycleId: string;
  stage: CycleStage;
  reason: string;
}

/** How a closed workflow ended, in words, and the stage that makes the cycle; null while it runs (or for a normal completion). */
export async function closedWorkflowEnding(
  client: Client,
  workflowId: string,
): Promise<{ stage: CycleStage; reason: string } | null> {
  const handle = client.workflow.getHandle(workflowId);
  const d = await handle.describe();
  const state = d.status.name;
  // Running, paused, completed (the workflow recorded its own ending) or continued: nothing to reconcile.
  if (state !== 'TERMINATED' && state !== 'TIMED_OUT' && state !== 'CANCELLED' && state !== 'FAILED') return null;
  const history = await handle.fetchHistory();
  const last = history.events?.[history.events.length - 1];
  if (state === 'TERMINATED') {
    const a = last?.workflowExecutionTerminatedEventAttributes ?? undefined;
    const by = a?.identity ? ` by ${a.identity}` : '';
    return {
      stage: CycleStage.FAILED,
      reason: `the cycle's workflow was terminated in Temporal${by}: ${a?.reason || 'no reason given'}`,
    };
  }
  if (state === 'TIMED_OUT') {
    return {
      stage: CycleStage.FAILED,
      reason: "the cycle's workflow timed out in Temporal (its execution or run timeout passed before it finished)",
    };
  }
  if (state === 'CANCELLED') {
    return { stage: CycleStage.CANCELLED, reason: 'cancelled in Temporal (a cancel request to the workflow)' };
  }
  // FAILED: the failure's own words, innermost cause last.
  const failure = last?.workflowExecutionFailedEventAttributes?.failure ?? undefined;
  const words: string[] = [];
  for (let f = failure; f && words.length < 5; f = f.cause ?? undefined) if (f.message) words.push(f.message);
  return {
    stage: CycleStage.FAILED,
    reason: `the cycle's workflow failed in Temporal: ${words.join(': ') || 'no failure message'}`,
  };
}

/** One sweep: every active cycle whose workflow has closed is ended as the workflow would have. */
export async function reconcileEndedCycles(deps: CycleReconcilerDeps): Promise<ReconciledCycle[]> {
  const out: ReconciledCycle[] = [];
  for (const row of await listCycleRows(deps.db, { activeOnly: true, limit: 1000 })) {
    let ending: { stage: CycleStage; reason: string } | null;
    try {
      ending = await closedWorkflowEnding(deps.client, row.workflowId);
    } catch (err) {
      // Not found: past the namespace's retention, or another namespace. Left alone (and said) rather than guessed at.
      deps.logger.warn(
        { err, cycleId: row.cycleId, workflowId: row.workflowId },
        'the cycle reconciler could not ask Temporal about this cycle',
      );
      continue;
    }
    if (!ending) continue;
    await endCycle(deps, row, ending.stage, ending.reason);
    out.push({ cycleId: row.cycleId, ...ending });
  }
  return out;
}

async function endCycle(deps: CycleReconcilerDeps, row: CycleRow, stage: CycleStage, reason: string): Promise<void> {
  const log = deps.logger.child({ cycleId: row.cycleId });
  const at = (deps.now ?? (() => new Date()))();
  const last = (row.summary as CycleStatus | null) ?? undefined;
  const status: CycleStatus = {
    cycleId: row.cycleId,
    policyName: row.policyName,
    policyVersion: row.policyVersion,
    paused: false,
    emergency: row.emergency,
    requestedBy: row.requestedBy,
    scope: row.scope,
    endpoints: 0,
    patches: 0,
    bySeverity: {},
    approvals: { records: [], received: 0, needed: 0 },
    waves: [],
    startedAt: row.createdAt,
    ...last,
    reasons: [...(last?.reasons ?? []), `ended in ${last?.stage ?? row.stage}: ${reason}`],
    stage,
    outcome: reason,
    updatedAt: at.toISOString(),
    ...(row.changeNumber ? { changeNumber: row.changeNumber } : {}),
  };
  delete status.pauseReason;
  if (row.changeNumber) {
    try {
      const left = await deps.activities.closeChange({
        changeNumber: row.changeNumber,
        closeCode: 'unsuccessful',
        notes: reason,
      });
      if (left) status.changeState = left;
    } catch (err) {
      status.reasons.push(
        `change ${row.changeNumber} could not be closed (${(err as Error).message}): close it in ServiceNow`,
      );
      log.warn({ err }, 'the reconciler could not close the change');
    }
  }
  try {
    await deps.activities.notifyStage({ cycleId: row.cycleId, stage, text: reason });
  } catch (err) {
    log.warn({ err }, 'the reconciler could not post the ending to chat');
  }
  let emails: string[] = [];
  try {
    emails = (await getPolicy(deps.db, row.policyName, row.policyVersion)).policy.notify.email;
  } catch {
    // The policy version is gone: the report goes to the default recipients.
  }
  try {
    await deps.activities.sendReport({ status, outcome: stage, emails });
  } catch (err) {
    log.warn({ err }, 'the reconciler could not send the report');
  }
  await recordStageChange(deps.db, {
    cycleId: row.cycleId,
    stage,
    actor: 'system:reconciler',
    detail: { text: reason },
    summary: status as unknown as Record<string, unknown>,
    reason,
    at,
  });
  log.warn({ stage, reason }, 'cycle ended outside its workflow: recorded');
}

/** Sweeps now and then every `intervalMs` (default 30 s) after the last sweep ended, until stopped; a failed sweep is logged. */
export function startCycleReconciler(deps: CycleReconcilerDeps & { intervalMs?: number }): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const sweep = async (): Promise<void> => {
    try {
      const ended = await reconcileEndedCycles(deps);
      if (ended.length) deps.logger.info({ ended }, 'cycle reconciler ended cycles whose workflows had closed');
    } catch (err) {
      deps.logger.warn({ err }, 'cycle reconciler sweep failed; the next sweep tries again');
    }
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep();
    }, deps.intervalMs ?? 30_000);
    timer.unref();
  };
  let running = sweep();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
