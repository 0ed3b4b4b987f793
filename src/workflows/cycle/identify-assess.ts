/**
 * Start, IDENTIFY and ASSESS: the cycle's policy, fresh scans of what is not known, the missing patches
 * assessed, and the waves planned.
 */
import { patched, workflowInfo } from '@temporalio/workflow';
import type { StartCycleResult } from '../../activities/cycle';
import type { AssessResult } from '../../domain/assessment';
import { CycleStage } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { CycleActs } from './proxies';
import { checkpoint } from './checkpoint';
import { bestEffort, setStage } from './steps';
import { CycleEnded, iso, type CycleState } from './state';
import { waveStatus } from './waves';

/** Patch id (patched()): histories recorded before IDENTIFY scanned stale endpoints still replay. */
const IDENTIFY_SCANS_STALE = 'identify-scans-stale';

/** Records the cycle as started and fixes its policy. */
export async function startCycle(s: CycleState, a: CycleActs): Promise<StartCycleResult> {
  const start = await a.acts.startCycle({ ...s.input, workflowId: workflowInfo().workflowId });
  const { policy } = start;
  s.policy = policy;
  s.status.policyVersion = start.policyVersion;
  s.status.emergency = policy.emergency;
  await setStage(
    s,
    a,
    CycleStage.IDENTIFY,
    `policy ${policy.name} v${start.policyVersion}${policy.emergency ? ' (emergency)' : ''}`,
  );
  return start;
}

export interface Assessed {
  assessment: AssessResult;
  /** The outcome when nothing is missing: the cycle ends COMPLETED here. */
  nothingToPatch?: string;
}

/**
 * IDENTIFY scans the endpoints whose last scan is missing or too old, and waits (bounded) for them; ASSESS
 * reads what they miss. Ends FAILED when none of the endpoints in scope could be scanned; `nothingToPatch`
 * is the outcome when nothing is missing.
 */
export async function identifyAndAssess(s: CycleState, a: CycleActs, policy: DeploymentPolicy): Promise<Assessed> {
  const { status } = s;
  s.step = 'identify failed';
  const scanFirst = patched(IDENTIFY_SCANS_STALE);
  if (scanFirst) await scanStale(s, a, policy);

  const r = await a.acts.identifyAndAssess({
    cycleId: s.cycleId,
    scope: s.input.scope,
    policy,
    ...(scanFirst ? { requireFreshScan: true } : {}),
  });
  status.endpoints = r.endpoints;
  status.patches = r.patches;
  status.bySeverity = r.bySeverity;
  status.reasons.push(...r.reasons);
  const notScanned = r.notScanned && r.notScanned.count > 0 ? r.notScanned : undefined;
  const more =
    notScanned && notScanned.count > notScanned.hostnames.length
      ? `, … and ${notScanned.count - notScanned.hostnames.length} more`
      : '';
  const notScannedText = notScanned
    ? `${notScanned.count} endpoint(s) could not be scanned within ${policy.identify.scanTimeoutSeconds}s and were left out: ${notScanned.hostnames.join(', ')}${more}`
    : undefined;
  if (notScannedText) status.reasons.push(notScannedText);
  if (scanFirst && r.endpointsInScope > 0 && r.endpointsChecked === 0) {
    throw new CycleEnded(
      CycleStage.FAILED,
      `none of the ${r.endpointsInScope} endpoint(s) in scope could be scanned, so nothing is known about them: ${notScannedText ?? ''}. Check that their agents run and reach the server (patchops agents list), then start the cycle again`,
    );
  }

  s.step = 'assess failed';
  const text = `${r.patches} patch(es) for ${r.endpoints} endpoint(s), risk ${r.risk}${notScanned ? `; ${notScanned.count} endpoint(s) not scanned` : ''}`;
  await setStage(s, a, CycleStage.ASSESS, text, { risk: r.risk, byType: r.byType });
  if (r.patches > 0) return { assessment: r };
  if (r.endpointsChecked === undefined)
    return {
      assessment: r,
      nothingToPatch: `nothing to patch: no missing patches in scope (${r.endpointsInScope} endpoint(s) checked)`,
    };
  return {
    assessment: r,
    nothingToPatch: `nothing to patch: no missing patches on the ${r.endpointsChecked} endpoint(s) checked${notScannedText ? `; ${notScannedText}` : ''}`,
  };
}

async function scanStale(s: CycleState, a: CycleActs, policy: DeploymentPolicy): Promise<void> {
  const stale = await a.acts.scanStaleEndpoints({ cycleId: s.cycleId, scope: s.input.scope, policy });
  if (stale.stale === 0) return;
  const text = `scanning ${stale.stale} of ${stale.inScope} endpoint(s): never scanned or last scan older than ${policy.identify.maxScanAgeHours} h (waiting up to ${policy.identify.scanTimeoutSeconds}s)`;
  await bestEffort('the scan notice', () =>
    a.notify.notifyStage({ cycleId: s.cycleId, stage: CycleStage.IDENTIFY, text }),
  );
  await a.wait.awaitJobs({
    cycleId: s.cycleId,
    waves: [null],
    kind: 'scan',
    until: iso(Date.now() + policy.identify.scanTimeoutSeconds * 1000),
    unreachableAfterSeconds: Math.min(policy.jobs.unreachableAfterSeconds, policy.identify.scanTimeoutSeconds),
    pollIntervalSeconds: policy.jobs.pollIntervalSeconds,
  });
  await a.acts.cancelQueuedJobs({ cycleId: s.cycleId, waves: [null] });
}

/** Plans the test ring and the waves (status shows them); returns the test ring's size. */
export async function planWaves(s: CycleState, a: CycleActs, policy: DeploymentPolicy): Promise<{ testSize: number }> {
  s.step = 'planning the waves failed';
  const plan = await a.acts.planCycleWaves({ cycleId: s.cycleId, policy });
  s.status.waves = plan.waves.map((w) => ({ ...waveStatus(w.index, w.name, 'planned'), total: w.size }));
  await checkpoint(s, a);
  return { testSize: plan.test.size };
}
