/**
 * patchCycleWorkflow: one patch cycle, IDENTIFY → ASSESS → TEST → AWAIT_APPROVAL → SCHEDULED →
 * DEPLOYING → VERIFYING → REPORTING → COMPLETED, or FAILED / CANCELLED / ROLLED_BACK.
 * Deterministic: all I/O is in activities, which return aggregates only; history grows with waves
 * and votes, never with endpoints.
 */
import {
  CancellationScope,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { CycleActivities } from '../activities/cycle';
import { checkVote, tally, approvalsReceived, type ApprovalState } from '../domain/approval';
import {
  CycleStage,
  type ApprovalResult,
  type ApprovalVote,
  type ChangeRequestStateEvent,
  type CycleStatus,
  type PatchCycleInput,
  type WaveStatus,
} from '../domain/cycle';
import { failureThresholdTripped, type DeploymentPolicy } from '../domain/policy';
import { deploymentWaveWorkflow, waveWorkflowId, type DeploymentWaveResult } from './deployment-wave';
import {
  approveCycleUpdate,
  cancelCycleSignal,
  changeRequestStateSignal,
  cycleStatusQuery,
  pauseCycleSignal,
  rejectCycleUpdate,
  resumeCycleSignal,
  rollbackCycleSignal,
  type ControlInput,
} from './messages';
import { failureMessage, isOutage } from './failures';

const acts = proxyActivities<CycleActivities>({ startToCloseTimeout: '5 minutes', retry: { maximumInterval: '30 seconds' } });
const waitActs = proxyActivities<CycleActivities>({ startToCloseTimeout: '30 days', heartbeatTimeout: '60 seconds', retry: { maximumInterval: '30 seconds' } });
/** Chat, mail and change-desk calls: a few tries, then the cycle carries on (recorded in the log). */
const notifyActs = proxyActivities<CycleActivities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3, maximumInterval: '10 seconds' } });
/**
 * Change-desk calls the cycle depends on (open, poll): a few tries, then the workflow decides. An outage
 * (retries ran out) pauses and asks; a refusal (non-retryable, e.g. ServiceNow's 403) ends the cycle FAILED.
 */
const deskActs = proxyActivities<CycleActivities>({ startToCloseTimeout: '2 minutes', retry: { maximumAttempts: 4, maximumInterval: '30 seconds' } });

/** Patch ids (patched()): histories recorded before each change still replay. */
const FAILURES_END_VISIBLY = 'failures-end-visibly';
const IDENTIFY_SCANS_STALE = 'identify-scans-stale';

class CycleEnded extends Error {
  constructor(
    readonly stage: CycleStage,
    readonly outcome: string,
  ) {
    super(outcome);
  }
}

const iso = (ms: number = Date.now()) => new Date(ms).toISOString();

export async function patchCycleWorkflow(input: PatchCycleInput): Promise<CycleStatus> {
  const startedAt = iso();
  const status: CycleStatus = {
    cycleId: input.cycleId,
    policyName: input.policyName,
    ...(input.policyVersion !== undefined ? { policyVersion: input.policyVersion } : {}),
    stage: CycleStage.IDENTIFY,
    paused: false,
    emergency: input.emergency ?? false,
    requestedBy: input.requestedBy,
    scope: input.scope,
    endpoints: 0,
    patches: 0,
    bySeverity: {},
    approvals: { records: [], received: 0, needed: 0 },
    waves: [],
    reasons: [],
    startedAt,
    updatedAt: startedAt,
  };
  let approval: ApprovalState | undefined;
  let cancelRequested: ControlInput | undefined;
  let rollbackAll: ControlInput | undefined;
  const endpointRollbacks: Array<{ by: string; endpointId: string }> = [];
  let changeEvent: ChangeRequestStateEvent | undefined;
  let changeSeq = 0;
  const interrupted = () => cancelRequested !== undefined || rollbackAll !== undefined;

  // ------------------------------------------------------------ messages
  setHandler(cycleStatusQuery, () => status);

  const validateVote = (vote: ApprovalVote, decision: 'approve' | 'reject') => {
    if (!approval || status.stage !== CycleStage.AWAIT_APPROVAL) throw new Error(`approvals are not open: the cycle is in ${status.stage}`);
    const c = checkVote(approval, vote, decision);
    if (!c.ok) throw new Error(c.reason);
  };
  const castVote = async (vote: ApprovalVote, decision: 'approve' | 'reject'): Promise<ApprovalResult> => {
    const a = approval!;
    const at = iso();
    a.records.push({ identity: vote.identity.trim(), channel: vote.channel, decision, ...(vote.reason ? { reason: vote.reason } : {}), at });
    const outcome = tally(a);
    status.approvals = { ...status.approvals, records: [...a.records], received: approvalsReceived(a), needed: a.needed };
    status.updatedAt = at;
    if (decision === 'reject') status.reasons.push(`rejected by ${vote.identity}: ${vote.reason ?? ''}`);
    try {
      await notifyActs.recordVote({
        cycleId: input.cycleId,
        notice: { cycleId: input.cycleId, identity: vote.identity.trim(), channel: vote.channel, decision, ...(vote.reason ? { reason: vote.reason } : {}), outcome, at },
        ...(vote.messageRef ? { messageRef: vote.messageRef } : {}),
      });
    } catch (err) {
      log.warn('recording a vote failed', { error: String(err) });
    }
    return { decision, outcome, approvalsReceived: approvalsReceived(a), approvalsNeeded: a.needed };
  };
  setHandler(approveCycleUpdate, (vote) => castVote(vote, 'approve'), { validator: (vote) => validateVote(vote, 'approve') });
  setHandler(rejectCycleUpdate, (vote) => castVote(vote, 'reject'), { validator: (vote) => validateVote(vote, 'reject') });

  // Pause/resume also act mid-wave (recordControl holds the installs not yet handed out); `seq` orders them.
  let pauseSeq = 0;
  setHandler(pauseCycleSignal, (c) => {
    status.paused = true;
    status.pauseReason = c.reason ?? `paused by ${c.by}`;
    void control('paused', c.by, { reason: status.pauseReason, seq: ++pauseSeq });
  });
  setHandler(resumeCycleSignal, (c) => {
    status.paused = false;
    delete status.pauseReason;
    void control('resumed', c.by, { seq: ++pauseSeq });
  });
  setHandler(cancelCycleSignal, (c) => {
    cancelRequested ??= c;
  });
  setHandler(rollbackCycleSignal, (c) => {
    if (c.endpointId) endpointRollbacks.push({ by: c.by, endpointId: c.endpointId });
    else rollbackAll ??= c;
  });
  setHandler(changeRequestStateSignal, (e) => {
    changeEvent = e;
    changeSeq += 1;
    status.changeState = e.state;
    status.changeNumber ??= e.changeNumber;
  });

  // A control is retried until it is recorded (it also holds or releases installs), never dropped after a few tries:
  // a database outage shows as the pending activity's last failure. Only a non-retryable failure ends it, loudly.
  async function control(action: string, by: string, details: Record<string, unknown>): Promise<void> {
    try {
      await acts.recordControl({ cycleId: input.cycleId, action, by, details });
    } catch (err) {
      log.error('a control could not be recorded in the audit log', { action, by, error: String(err) });
    }
  }

  async function setStage(stage: CycleStage, text: string, detail: Record<string, unknown> = {}, reason?: string): Promise<void> {
    status.stage = stage;
    status.updatedAt = iso();
    await acts.recordStage({ cycleId: input.cycleId, stage, detail: { text, ...detail }, status, ...(reason !== undefined ? { reason } : {}) });
    try {
      await notifyActs.notifyStage({ cycleId: input.cycleId, stage, text });
    } catch (err) {
      log.warn('stage notification failed', { error: String(err) });
    }
  }

  function waveStatus(index: number, name: string, state: WaveStatus['state'], r?: Partial<DeploymentWaveResult>): WaveStatus {
    return {
      index,
      name,
      state,
      total: r?.total ?? 0,
      succeeded: r?.succeeded ?? 0,
      failed: r?.failed ?? 0,
      unreachable: r?.unreachable ?? 0,
      pending: r?.pending ?? 0,
      ...(r?.windowStart ? { windowStart: r.windowStart } : {}),
      ...(r?.windowEnd ? { windowEnd: r.windowEnd } : {}),
    };
  }

  /** Runs one wave as a child workflow; returns undefined when a cancel or rollback interrupted it. */
  async function runWave(policy: DeploymentPolicy, index: number, name: string, notBefore: string | undefined, test: boolean): Promise<DeploymentWaveResult | undefined> {
    const scope = new CancellationScope();
    let result: DeploymentWaveResult | undefined;
    let error: unknown;
    let done = false;
    const p = scope
      .run(() =>
        executeChild(deploymentWaveWorkflow, {
          workflowId: waveWorkflowId(input.cycleId, index),
          args: [
            {
              cycleId: input.cycleId,
              wave: index,
              name,
              respectWindows: !test && policy.maintenance.respectWindows,
              ...(notBefore ? { notBefore } : {}),
              expectedInstallMinutes: policy.maintenance.expectedInstallMinutes,
              reboot: policy.reboot,
              failureThreshold: test ? policy.test.failureThreshold : policy.failureThreshold,
              unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
              pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
              limits: { concurrency: policy.concurrency, batchSize: policy.batchSize },
            },
          ],
        }),
      )
      .then(
        (r) => {
          result = r;
          done = true;
        },
        (e: unknown) => {
          error = e;
          done = true;
        },
      );
    await condition(() => done || interrupted());
    if (!done) {
      scope.cancel();
      await p;
    }
    if (error !== undefined && !isCancellation(error)) throw error;
    return result;
  }

  async function rollbackWaves(waves: number[], by: string): Promise<{ succeeded: number; total: number }> {
    await acts.cancelQueuedJobs({ cycleId: input.cycleId, waves });
    const d = await acts.dispatchCycleJobs({ cycleId: input.cycleId, waves, kind: 'rollback' });
    await control('rollback.dispatched', by, { waves, jobs: d.total });
    const pol = policy!;
    const r = await waitActs.awaitJobs({
      cycleId: input.cycleId,
      waves,
      kind: 'rollback',
      until: iso(Date.now() + Math.max(pol.jobs.unreachableAfterSeconds, 60) * 1000),
      unreachableAfterSeconds: pol.jobs.unreachableAfterSeconds,
      pollIntervalSeconds: pol.jobs.pollIntervalSeconds,
    });
    return { succeeded: r.succeeded, total: r.total };
  }

  /**
   * SCHEDULED with a change request: waits for the planned start while following the change. The change
   * manager may move the window (the wait follows it, never before the cycle's own notBefore) or cancel or
   * reject the change (the cycle ends CANCELLED, nothing deployed). Changes arrive by webhook signal, or by
   * polling ServiceNow every `pollSeconds`. Returns the start it waited for.
   */
  async function waitScheduled(changeNumber: string, plannedStart: string, pollSeconds: number, wavesDone: number[]): Promise<string> {
    let at = plannedStart;
    let seen = changeSeq;
    for (;;) {
      const wait = Date.parse(at) - Date.now();
      if (wait <= 0 || interrupted()) return at;
      const signalled = await condition(() => changeSeq !== seen || interrupted(), Math.min(wait, pollSeconds * 1000));
      if (interrupted()) return at;
      if (!signalled && Date.parse(at) > Date.now()) {
        const polled = await pollChange(changeNumber, wavesDone);
        if (polled && (polled.state !== changeEvent?.state || polled.approval !== changeEvent?.approval || polled.plannedStart !== changeEvent?.plannedStart)) {
          changeEvent = polled;
          status.changeState = polled.state;
          changeSeq += 1;
        }
      }
      if (changeSeq === seen) continue;
      seen = changeSeq;
      const ev = changeEvent;
      if (ev?.state === 'canceled' || ev?.approval === 'rejected') {
        throw new CycleEnded(
          CycleStage.CANCELLED,
          `change ${changeNumber} ${ev.state === 'canceled' ? 'was cancelled' : 'was rejected'} while scheduled${ev.by ? ` by ${ev.by}` : ''}${ev.reason ? `: ${ev.reason}` : ''}`,
        );
      }
      if (ev?.plannedStart) {
        const next = input.notBefore && Date.parse(input.notBefore) > Date.parse(ev.plannedStart) ? input.notBefore : ev.plannedStart;
        if (Date.parse(next) !== Date.parse(at)) {
          status.reasons.push(`change ${changeNumber} rescheduled: deploying from ${next} (was ${at})`);
          await control('rescheduled', ev.by ?? 'servicenow', { changeNumber, from: at, to: next });
          at = next;
          status.nextWindow = { start: at, end: at };
          status.updatedAt = iso();
        }
      }
    }
  }

  /** Between steps: serve single-endpoint rollbacks, honour cancel / rollback, wait while paused. */
  async function checkpoint(wavesDone: number[]): Promise<void> {
    while (endpointRollbacks.length > 0) {
      const r = endpointRollbacks.shift()!;
      if (wavesDone.length > 0) {
        const d = await acts.dispatchCycleJobs({ cycleId: input.cycleId, waves: wavesDone, kind: 'rollback', endpointId: r.endpointId });
        status.reasons.push(`rollback of ${r.endpointId} requested by ${r.by}: ${d.total} job(s)`);
        await control('rollback.endpoint', r.by, { endpointId: r.endpointId, jobs: d.total });
      }
    }
    if (status.paused && !interrupted()) {
      await condition(() => !status.paused || interrupted());
    }
    if (rollbackAll) {
      const r = wavesDone.length > 0 ? await rollbackWaves(wavesDone, rollbackAll.by) : { succeeded: 0, total: 0 };
      for (const w of status.waves) if (wavesDone.includes(w.index)) w.state = 'rolled_back';
      if (status.test && wavesDone.includes(0)) status.test.state = 'rolled_back';
      throw new CycleEnded(CycleStage.ROLLED_BACK, `rolled back by ${rollbackAll.by}${rollbackAll.reason ? `: ${rollbackAll.reason}` : ''} (${r.succeeded} of ${r.total} endpoint(s) rolled back)`);
    }
    if (cancelRequested) {
      await acts.cancelQueuedJobs({ cycleId: input.cycleId, waves: [0, ...status.waves.map((w) => w.index)] });
      throw new CycleEnded(CycleStage.CANCELLED, `cancelled by ${cancelRequested.by}${cancelRequested.reason ? `: ${cancelRequested.reason}` : ''}`);
    }
  }

  /** Pauses the cycle with a question (as a tripped wave does) and waits: resume retries, cancel ends the cycle. */
  async function askAfterFailure(what: string, wavesDone: number[]): Promise<void> {
    status.paused = true;
    status.pauseReason = `${what}. Resume to retry, or cancel the cycle.`;
    status.reasons.push(status.pauseReason);
    status.updatedAt = iso();
    await control('paused', 'system:workflow', { reason: status.pauseReason, seq: ++pauseSeq });
    await notifyActs.notifyPause({ cycleId: input.cycleId, reason: status.pauseReason }).catch((err: unknown) => log.warn('pause question failed', { error: String(err) }));
    await checkpoint(wavesDone);
  }

  /**
   * Raises the change request (idempotent by cycle id). ServiceNow refusing it ends the cycle FAILED in its
   * own words; ServiceNow not answering pauses the cycle and asks (resume retries, cancel ends it).
   */
  async function openChange(args: Parameters<CycleActivities['openChange']>[0], wavesDone: number[]): Promise<Awaited<ReturnType<CycleActivities['openChange']>>> {
    for (;;) {
      try {
        return await deskActs.openChange(args);
      } catch (e) {
        if (!patched(FAILURES_END_VISIBLY)) throw e;
        if (!isOutage(e)) throw new CycleEnded(CycleStage.FAILED, `could not create the change request: ${failureMessage(e)}`);
        await askAfterFailure(`ServiceNow is not answering, so the change request could not be created (${failureMessage(e)})`, wavesDone);
      }
    }
  }

  /**
   * Polls the change. An unanswered poll is no news (the next poll or the webhook brings the state), said once
   * per outage; a refused one (credentials, ACL) pauses and asks, since only a person can fix it.
   */
  let pollFailing = false;
  async function pollChange(changeNumber: string, wavesDone: number[]): Promise<ChangeRequestStateEvent | null> {
    for (;;) {
      try {
        const polled = await deskActs.getChangeState({ changeNumber });
        if (pollFailing) status.reasons.push(`ServiceNow answers again: following change ${changeNumber}`);
        pollFailing = false;
        return polled;
      } catch (e) {
        if (!patched(FAILURES_END_VISIBLY)) throw e;
        if (!isOutage(e)) {
          await askAfterFailure(`ServiceNow refused to show change ${changeNumber} (${failureMessage(e)}): fix the integration's access to change requests`, wavesDone);
          continue;
        }
        if (!pollFailing) {
          pollFailing = true;
          const why = `ServiceNow did not answer when asked for change ${changeNumber} (${failureMessage(e)}): still waiting; the next poll or the webhook brings its state`;
          status.reasons.push(why);
          await notifyActs.notifyStage({ cycleId: input.cycleId, stage: status.stage, text: why }).catch(() => undefined);
        }
        return null;
      }
    }
  }

  let policy: DeploymentPolicy | undefined;
  /** What the cycle was doing, for the reason of a failure no step turned into words of its own. */
  let step = 'could not start the cycle';

  async function run(): Promise<string> {
    const start = await acts.startCycle({ ...input, workflowId: workflowInfo().workflowId });
    policy = start.policy;
    status.policyVersion = start.policyVersion;
    status.emergency = policy.emergency;
    await setStage(CycleStage.IDENTIFY, `policy ${policy.name} v${start.policyVersion}${policy.emergency ? ' (emergency)' : ''}`);

    // IDENTIFY scans the endpoints whose last scan is missing or too old, and waits (bounded) for them.
    step = 'identify failed';
    const scanFirst = patched(IDENTIFY_SCANS_STALE);
    if (scanFirst) {
      const stale = await acts.scanStaleEndpoints({ cycleId: input.cycleId, scope: input.scope, policy });
      if (stale.stale > 0) {
        const text = `scanning ${stale.stale} of ${stale.inScope} endpoint(s): never scanned or last scan older than ${policy.identify.maxScanAgeHours} h (waiting up to ${policy.identify.scanTimeoutSeconds}s)`;
        await notifyActs.notifyStage({ cycleId: input.cycleId, stage: CycleStage.IDENTIFY, text }).catch(() => undefined);
        await waitActs.awaitJobs({
          cycleId: input.cycleId,
          waves: [null],
          kind: 'scan',
          until: iso(Date.now() + policy.identify.scanTimeoutSeconds * 1000),
          unreachableAfterSeconds: Math.min(policy.jobs.unreachableAfterSeconds, policy.identify.scanTimeoutSeconds),
          pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
        });
        await acts.cancelQueuedJobs({ cycleId: input.cycleId, waves: [null] });
      }
    }

    const a = await acts.identifyAndAssess({ cycleId: input.cycleId, scope: input.scope, policy, ...(scanFirst ? { requireFreshScan: true } : {}) });
    status.endpoints = a.endpoints;
    status.patches = a.patches;
    status.bySeverity = a.bySeverity;
    status.reasons.push(...a.reasons);
    const notScanned = a.notScanned && a.notScanned.count > 0 ? a.notScanned : undefined;
    const notScannedText = notScanned
      ? `${notScanned.count} endpoint(s) could not be scanned within ${policy.identify.scanTimeoutSeconds}s and were left out: ${notScanned.hostnames.join(', ')}${notScanned.count > notScanned.hostnames.length ? `, … and ${notScanned.count - notScanned.hostnames.length} more` : ''}`
      : undefined;
    if (notScannedText) status.reasons.push(notScannedText);
    if (scanFirst && a.endpointsInScope > 0 && a.endpointsChecked === 0) {
      throw new CycleEnded(
        CycleStage.FAILED,
        `none of the ${a.endpointsInScope} endpoint(s) in scope could be scanned, so nothing is known about them: ${notScannedText ?? ''}. Check that their agents run and reach the server (patchops agents list), then start the cycle again`,
      );
    }
    step = 'assess failed';
    await setStage(CycleStage.ASSESS, `${a.patches} patch(es) for ${a.endpoints} endpoint(s), risk ${a.risk}${notScanned ? `; ${notScanned.count} endpoint(s) not scanned` : ''}`, { risk: a.risk, byType: a.byType });
    if (a.patches === 0) {
      if (a.endpointsChecked === undefined) return `nothing to patch: no missing patches in scope (${a.endpointsInScope} endpoint(s) checked)`;
      return `nothing to patch: no missing patches on the ${a.endpointsChecked} endpoint(s) checked${notScannedText ? `; ${notScannedText}` : ''}`;
    }

    step = 'planning the waves failed';
    const plan = await acts.planCycleWaves({ cycleId: input.cycleId, policy });
    status.waves = plan.waves.map((w) => ({ ...waveStatus(w.index, w.name, 'planned'), total: w.size }));
    await checkpoint([]);

    // ------------------------------------------------------------ TEST
    const wavesDone: number[] = [];
    if (plan.test.size > 0) {
      step = 'the test ring failed';
      status.test = { ...waveStatus(0, 'test', 'running'), total: plan.test.size };
      await setStage(CycleStage.TEST, `test ring: ${plan.test.size} endpoint(s), soak ${policy.test.soakSeconds}s`);
      const r = await runWave(policy, 0, 'test', undefined, true);
      wavesDone.push(0);
      if (!r) {
        await checkpoint(wavesDone);
        throw new Error('unreachable');
      }
      status.test = waveStatus(0, 'test', 'running', r);
      let failed = r.failed;
      if (!r.tripped && r.succeeded > 0) {
        await condition(interrupted, policy.test.soakSeconds * 1000);
        await checkpoint(wavesDone);
        await acts.dispatchCycleJobs({ cycleId: input.cycleId, waves: [0], kind: 'verify' });
        const v = await waitActs.awaitJobs({
          cycleId: input.cycleId,
          waves: [0],
          kind: 'verify',
          until: iso(Date.now() + policy.jobs.unreachableAfterSeconds * 1000),
          unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
          pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
        });
        failed += v.failed + v.unreachable;
      }
      const counts = { total: r.total, failed, unreachable: r.unreachable + r.pending };
      if (r.tripped || failureThresholdTripped(policy.test.failureThreshold, counts)) {
        status.test = { ...status.test, failed, state: 'rolled_back' };
        const rb = await rollbackWaves([0], 'system:workflow');
        const why = `test ring failed its threshold: ${failed + r.unreachable} of ${r.total} endpoint(s) failed (limit ${policy.test.failureThreshold.percent}% / ${policy.test.failureThreshold.count}); ring rolled back (${rb.succeeded} of ${rb.total})`;
        status.reasons.push(why);
        throw new CycleEnded(CycleStage.ROLLED_BACK, why);
      }
      status.test = { ...status.test, failed, state: 'done' };
    } else {
      status.reasons.push(policy.test.group ? `no test ring: no endpoint of group "${policy.test.group}" needs these patches` : 'no test ring: the policy has none');
    }

    // ------------------------------------------------------------ AWAIT_APPROVAL
    step = 'approval failed';
    await checkpoint(wavesDone);
    let notBefore = input.notBefore;
    if (policy.change.type !== 'none' && start.changeDesk) {
      const ref = await openChange(
        {
          cycleId: input.cycleId,
          policy,
          assessment: a,
          requestedBy: input.requestedBy,
          ...(notBefore ? { plannedStart: notBefore } : {}),
          ...(status.test ? { test: status.test } : {}),
        },
        wavesDone,
      );
      if (ref) {
        status.changeNumber = ref.number;
        status.changeState ??= ref.state;
      }
    }
    if (!a.needsApproval) {
      await setStage(CycleStage.AWAIT_APPROVAL, 'auto-approved');
      status.reasons.push(`auto-approved: every patch is of a type the policy approves automatically (${policy.autoApprove.types.join(', ')})`);
    } else {
      const who = await acts.resolveApprovers({ policy });
      approval = {
        requestedBy: input.requestedBy,
        approvers: who.approvers,
        escalationApprovers: who.escalationApprovers,
        escalated: false,
        needed: a.approvalsNeeded,
        records: [],
        separationOfDuties: policy.approval.separationOfDuties,
      };
      const opened = Date.now();
      const deadline = opened + policy.approval.timeoutSeconds * 1000;
      status.approvals = { records: [], received: 0, needed: a.approvalsNeeded, deadline: iso(deadline) };
      await setStage(CycleStage.AWAIT_APPROVAL, `waiting for ${a.approvalsNeeded} approval(s) from ${policy.approval.approverGroups.join(', ')}`);
      const request = (notice?: 'reminder' | 'escalation') =>
        notifyActs
          .notifyApprovalRequest({
            cycleId: input.cycleId,
            policyName: policy!.name,
            emergency: policy!.emergency,
            requestedBy: input.requestedBy,
            scope: input.scope,
            endpoints: a.endpoints,
            bySeverity: a.bySeverity,
            byType: a.byType,
            topPatches: a.topPatches,
            ...(status.test ? { test: status.test } : {}),
            ...(status.changeNumber ? { changeNumber: status.changeNumber } : {}),
            deadline: iso(deadline),
            approvalsNeeded: a.approvalsNeeded,
            ...(policy!.notify.slackChannel ? { channel: policy!.notify.slackChannel } : {}),
            ...(notice ? { notice } : {}),
            approvers: approval!.escalated ? [...approval!.approvers, ...approval!.escalationApprovers] : approval!.approvers,
          })
          .catch((err: unknown) => log.warn('approval request failed', { error: String(err) }));
      await request();
      let lastNotice = opened;
      const escalateAt = policy.approval.escalationGroups.length > 0 ? opened + policy.approval.escalateAfterSeconds * 1000 : Infinity;
      for (;;) {
        const wake = Math.min(deadline, lastNotice + policy.approval.reminderSeconds * 1000, approval.escalated ? Infinity : escalateAt);
        const decided = await condition(() => tally(approval!) !== 'pending' || interrupted(), Math.max(1, wake - Date.now()));
        if (decided) break;
        const t = Date.now();
        if (t >= deadline) {
          const why = `approval timed out after ${policy.approval.timeoutSeconds}s with ${approvalsReceived(approval)} of ${approval.needed} approval(s)`;
          status.reasons.push(why);
          throw new CycleEnded(CycleStage.FAILED, why);
        }
        if (!approval.escalated && t >= escalateAt) {
          approval.escalated = true;
          status.reasons.push(`escalated to ${policy.approval.escalationGroups.join(', ')} after ${policy.approval.escalateAfterSeconds}s`);
          await control('approval.escalated', 'system:workflow', { groups: policy.approval.escalationGroups });
          await request('escalation');
        } else {
          await control('approval.reminded', 'system:workflow', {});
          await request('reminder');
        }
        lastNotice = t;
      }
      await checkpoint(wavesDone);
      if (tally(approval) === 'rejected') {
        const r = approval.records.find((x) => x.decision === 'reject')!;
        throw new CycleEnded(CycleStage.CANCELLED, `rejected by ${r.identity}: ${r.reason ?? ''}`);
      }
      status.reasons.push(`approved by ${approval.records.filter((x) => x.decision === 'approve').map((x) => x.identity).join(', ')}`);
    }

    // ------------------------------------------------------------ the change request must be scheduled too
    if (status.changeNumber && start.changeDesk) {
      const changeNumber = status.changeNumber;
      for (;;) {
        const ev = changeEvent;
        if (ev?.state === 'canceled' || ev?.approval === 'rejected') {
          throw new CycleEnded(CycleStage.CANCELLED, `change ${changeNumber} ${ev.state === 'canceled' ? 'was cancelled' : 'was rejected'}${ev.by ? ` by ${ev.by}` : ''}${ev.reason ? `: ${ev.reason}` : ''}`);
        }
        if (ev && (ev.state === 'scheduled' || ev.state === 'implement')) {
          if (ev.plannedStart && (!notBefore || Date.parse(ev.plannedStart) > Date.parse(notBefore))) notBefore = ev.plannedStart;
          break;
        }
        const seq = changeSeq;
        const signalled = await condition(() => changeSeq !== seq || interrupted(), policy.change.pollSeconds * 1000);
        await checkpoint(wavesDone);
        if (!signalled) {
          const polled = await pollChange(changeNumber, wavesDone);
          if (polled && (polled.state !== changeEvent?.state || polled.approval !== changeEvent?.approval || polled.plannedStart !== changeEvent?.plannedStart)) {
            changeEvent = polled;
            status.changeState = polled.state;
          }
        }
      }
      status.reasons.push(`change ${changeNumber} is ${changeEvent?.state}`);
    }

    // ------------------------------------------------------------ SCHEDULED
    step = 'scheduling failed';
    await setStage(CycleStage.SCHEDULED, notBefore ? `deploying from ${notBefore}` : 'deploying now', notBefore ? { notBefore } : {});
    if (notBefore) {
      status.nextWindow = { start: notBefore, end: notBefore };
      if (status.changeNumber && start.changeDesk && patched('scheduled-follows-change')) {
        notBefore = await waitScheduled(status.changeNumber, notBefore, policy.change.pollSeconds, wavesDone);
      } else {
        const wait = Date.parse(notBefore) - Date.now();
        if (wait > 0) await condition(interrupted, wait);
      }
    }
    await checkpoint(wavesDone);

    // ------------------------------------------------------------ DEPLOYING
    step = 'deployment failed';
    await setStage(CycleStage.DEPLOYING, `${status.waves.length} wave(s)`);
    if (status.changeNumber) await notifyActs.addChangeNote({ changeNumber: status.changeNumber, note: 'Deployment started.' }).catch(() => undefined);
    for (const w of status.waves) {
      await checkpoint(wavesDone);
      w.state = policy.maintenance.respectWindows ? 'waiting_window' : 'running';
      const r = await runWave(policy, w.index, w.name, notBefore, false);
      if (!r) {
        w.state = 'done';
        wavesDone.push(w.index);
        await checkpoint(wavesDone);
        continue;
      }
      wavesDone.push(w.index);
      Object.assign(w, waveStatus(w.index, w.name, 'done', r));
      const text = `wave ${w.index} of ${status.waves.length} (${w.name}) done: ${r.succeeded} ok, ${r.failed} failed, ${r.unreachable} unreachable${r.pending ? `, ${r.pending} not started (window closed)` : ''}`;
      await notifyActs.notifyStage({ cycleId: input.cycleId, stage: CycleStage.DEPLOYING, text, wave: w }).catch(() => undefined);
      if (r.timedOut) status.reasons.push(`wave ${w.name}: window ended with ${r.pending} job(s) not started`);
      if (r.tripped) {
        w.state = 'paused';
        status.paused = true;
        status.pauseReason = `wave ${w.name} reached its failure threshold: ${r.failed + r.unreachable} of ${r.total} failed (limit ${policy.failureThreshold.percent}% / ${policy.failureThreshold.count})`;
        status.reasons.push(status.pauseReason);
        await control('paused', 'system:workflow', { reason: status.pauseReason, wave: w.index, seq: ++pauseSeq });
        await notifyActs.notifyPause({ cycleId: input.cycleId, reason: status.pauseReason, wave: w }).catch(() => undefined);
        await checkpoint(wavesDone);
        w.state = 'done';
      }
    }
    await checkpoint(wavesDone);

    // ------------------------------------------------------------ VERIFYING
    step = 'verification failed';
    const deployed = status.waves.map((w) => w.index).filter((i) => wavesDone.includes(i));
    await setStage(CycleStage.VERIFYING, `verifying ${deployed.length} wave(s)`);
    await acts.dispatchCycleJobs({ cycleId: input.cycleId, waves: deployed, kind: 'verify' });
    const v = await waitActs.awaitJobs({
      cycleId: input.cycleId,
      waves: deployed,
      kind: 'verify',
      until: iso(Date.now() + policy.jobs.unreachableAfterSeconds * 1000),
      unreachableAfterSeconds: policy.jobs.unreachableAfterSeconds,
      pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
    });
    const installed = status.waves.reduce((s, w) => ({ ok: s.ok + w.succeeded, bad: s.bad + w.failed + w.unreachable }), { ok: 0, bad: 0 });
    const verified = `verified ${v.succeeded} of ${v.total} endpoint(s)${v.failed + v.unreachable ? `, ${v.failed + v.unreachable} not verified` : ''}`;
    status.reasons.push(verified);
    return `${installed.ok} endpoint(s) patched, ${installed.bad} failed; ${verified}`;
  }

  let finalStage: CycleStage = CycleStage.COMPLETED;
  try {
    status.outcome = await run();
  } catch (e) {
    if (e instanceof CycleEnded) {
      finalStage = e.stage;
      status.outcome = e.outcome;
    } else if (patched(FAILURES_END_VISIBLY)) {
      // Every other way out still ends in a terminal stage with its reason, told everywhere a success is.
      if (isCancellation(e)) {
        finalStage = CycleStage.CANCELLED;
        status.outcome = 'cancelled in Temporal (a cancel request to the workflow)';
      } else {
        finalStage = CycleStage.FAILED;
        status.outcome = `${step}: ${failureMessage(e)}`;
      }
      log.warn('cycle ended by a failure', { outcome: status.outcome });
    } else {
      throw e;
    }
  }
  // The ending runs even when the workflow itself was asked to cancel.
  await CancellationScope.nonCancellable(async () => {
    status.paused = false;
    delete status.pauseReason;
    await setStage(CycleStage.REPORTING, status.outcome ?? '');
    if (status.changeNumber && policy && policy.change.type !== 'none') {
      const failures = status.waves.some((w) => w.failed + w.unreachable > 0);
      const closeCode = finalStage !== CycleStage.COMPLETED ? 'unsuccessful' : failures ? 'successful_issues' : 'successful';
      try {
        // The state the cycle leaves the change in (closed, or canceled when it was never approved).
        const left = await notifyActs.closeChange({ changeNumber: status.changeNumber, closeCode, notes: status.outcome ?? '' });
        if (left) status.changeState = left;
      } catch (err) {
        status.reasons.push(`change ${status.changeNumber} could not be closed (${failureMessage(err)}): close it in ServiceNow`);
        log.warn('closing the change failed', { error: String(err) });
      }
    }
    await notifyActs.sendReport({ status, outcome: finalStage, emails: policy?.notify.email ?? [] }).catch((err: unknown) => log.warn('report failed', { error: String(err) }));
    await setStage(finalStage, status.outcome ?? '', {}, status.outcome);
  });
  return status;
}
