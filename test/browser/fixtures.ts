/**
 * Data the dashboard tests build for themselves (no seed data), and a test double of the CycleService
 * that keeps the contract's error behaviour (refused approvals throw APPROVAL_REFUSED with the reason).
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client';
import {
  agentJobs,
  cycleApprovals,
  cycleStageEvents,
  endpointGroups,
  endpointPatches,
  endpoints,
  groupMembers,
  patchCycles,
  patches,
} from '../../src/db/schema/index';
import type { ApprovalResult, ApprovalVote, CycleScope, CycleStatus } from '../../src/domain/cycle';
import { CodedError, ErrorCode } from '../../src/domain/errors';
import type { CycleListItem, CycleService, StartCycleInput } from '../../src/services/cycle-service';

const DAY = 86_400_000;

export interface Fleet {
  now: Date;
  cycleId: string;
  /** What the overview must show for this data. */
  expected: {
    endpoints: number;
    compliant: number;
    pct: number;
    overdue: number;
    knownExploited: number;
    outstanding: number;
  };
}

/** Four endpoints in two groups, four patches, one cycle with a timeline, a vote and a failed job. */
export async function seedFleet(db: Db, tag = 't'): Promise<Fleet> {
  const now = new Date();
  const ago = (days: number) => new Date(now.getTime() - days * DAY);
  const id = (s: string) => `${tag}-${s}`;
  const [web, dbg] = await db
    .insert(endpointGroups)
    .values([{ name: id('web-servers') }, { name: id('db-servers') }])
    .returning({ id: endpointGroups.id });
  await db.insert(endpoints).values([
    {
      id: id('web-1'),
      machineId: id('m-web-1'),
      hostname: `${tag}-web-1.example.net`,
      osFamily: 'linux',
      osName: 'Debian',
      osVersion: '12',
      lastSeenAt: ago(0.01),
      pendingReboot: true,
    },
    {
      id: id('web-2'),
      machineId: id('m-web-2'),
      hostname: `${tag}-web-2.example.net`,
      osFamily: 'linux',
      osName: 'Debian',
      osVersion: '12',
      lastSeenAt: ago(0.02),
    },
    {
      id: id('db-1'),
      machineId: id('m-db-1'),
      hostname: `${tag}-db-1.example.net`,
      osFamily: 'windows',
      osName: 'Windows Server 2022',
      lastSeenAt: ago(1),
    },
    {
      id: id('mac-1'),
      machineId: id('m-mac-1'),
      hostname: `${tag}-mac-1.example.net`,
      osFamily: 'macos',
      osName: 'macOS 15',
    },
  ]);
  await db.insert(groupMembers).values([
    { groupId: web!.id, endpointId: id('web-1') },
    { groupId: web!.id, endpointId: id('web-2') },
    { groupId: dbg!.id, endpointId: id('db-1') },
  ]);
  await db.insert(patches).values([
    {
      id: id('KB5034441'),
      title: 'Windows security update <script>alert(1)</script>',
      vendor: 'Microsoft',
      type: 'security',
      severity: 'critical',
      cvss: 9.8,
      cves: ['CVE-2024-20666'],
      knownExploited: true,
      osFamily: 'windows',
    },
    {
      id: id('DSA-5678-1'),
      title: 'openssl security update',
      vendor: 'Debian',
      type: 'security',
      severity: 'important',
      cvss: 7.5,
      cves: ['CVE-2024-0727'],
      osFamily: 'linux',
    },
    {
      id: id('DSA-5000-1'),
      title: 'curl bug fix',
      vendor: 'Debian',
      type: 'bugfix',
      severity: 'low',
      osFamily: 'linux',
      supersededBy: id('DSA-5001-1'),
    },
    {
      id: id('DSA-5001-1'),
      title: 'curl update',
      vendor: 'Debian',
      type: 'bugfix',
      severity: 'low',
      osFamily: 'linux',
    },
  ]);
  await db.insert(endpointPatches).values([
    // important, 40 days old: past the 30-day SLA.
    { endpointId: id('web-1'), patchId: id('DSA-5678-1'), state: 'missing', detectedAt: ago(40) },
    {
      endpointId: id('web-1'),
      patchId: id('DSA-5000-1'),
      state: 'failed',
      detectedAt: ago(2),
      lastError: 'dpkg: lock held by another process',
    },
    {
      endpointId: id('web-2'),
      patchId: id('DSA-5678-1'),
      state: 'installed',
      detectedAt: ago(40),
      installedAt: ago(1),
    },
    // critical and known exploited, 10 days old: past the 7-day known-exploited clock.
    { endpointId: id('db-1'), patchId: id('KB5034441'), state: 'missing', detectedAt: ago(10) },
  ]);
  const cycleId = id('cycle-1');
  await db.insert(patchCycles).values({
    id: cycleId,
    workflowId: `patch-cycle:${cycleId}`,
    policyName: 'default',
    policyVersion: 1,
    stage: 'DEPLOYING',
    requestedBy: 'web:someone-else',
    changeNumber: 'CHG0031337',
    createdAt: ago(1),
  });
  await db.insert(cycleStageEvents).values([
    { cycleId, stage: 'IDENTIFY', at: ago(1) },
    { cycleId, stage: 'ASSESS', at: ago(0.9), detail: { patches: 3 } },
    { cycleId, stage: 'AWAIT_APPROVAL', at: ago(0.8) },
    { cycleId, stage: 'DEPLOYING', at: ago(0.5) },
  ]);
  await db
    .insert(cycleApprovals)
    .values({ cycleId, identity: 'slack:U0APPROVER', decision: 'approve', channel: 'slack', at: ago(0.6) });
  await db.insert(agentJobs).values([
    {
      id: id('job-1'),
      cycleId,
      wave: 1,
      endpointId: id('web-1'),
      kind: 'install',
      state: 'failed',
      error: 'dpkg: lock held by another process',
      finishedAt: ago(0.4),
    },
    {
      id: id('job-2'),
      cycleId,
      wave: 1,
      endpointId: id('web-2'),
      kind: 'install',
      state: 'succeeded',
      finishedAt: ago(0.4),
    },
  ]);
  return {
    now,
    cycleId,
    expected: { endpoints: 4, compliant: 2, pct: 50, overdue: 2, knownExploited: 1, outstanding: 3 },
  };
}

/** Empties the fleet tables (audit_log is append-only and stays). */
export async function clearFleet(db: Db): Promise<void> {
  await db.execute(
    sql`truncate agent_jobs, cycle_approvals, cycle_stage_events, patch_cycles, endpoint_patches, group_members, endpoint_groups, endpoints, patches cascade`,
  );
  await db.execute(sql`select patchops_rebuild_dashboard_aggregates()`);
}

export interface FakeCycleServiceCall {
  method: string;
  args: unknown[];
}

/** A CycleService test double: records calls; refuses a vote by the requester like the real validator. */
export function fakeCycleService(
  requesters: Record<string, string> = {},
): CycleService & { calls: FakeCycleServiceCall[] } {
  const calls: FakeCycleServiceCall[] = [];
  const paused = new Set<string>();
  const votes = new Map<string, Set<string>>();
  const record = (method: string, ...args: unknown[]) => calls.push({ method, args });
  const vote = (cycleId: string, v: ApprovalVote, decision: 'approve' | 'reject'): ApprovalResult => {
    if (requesters[cycleId] === v.identity)
      throw new CodedError(ErrorCode.ApprovalRefused, 'you requested this cycle; someone else must approve');
    const set = votes.get(cycleId) ?? new Set();
    if (set.has(v.identity)) throw new CodedError(ErrorCode.ApprovalRefused, 'you have already voted on this cycle');
    set.add(v.identity);
    votes.set(cycleId, set);
    return {
      decision,
      outcome: decision === 'reject' ? 'rejected' : set.size >= 2 ? 'approved' : 'pending',
      approvalsReceived: set.size,
      approvalsNeeded: 2,
    };
  };
  return {
    calls,
    start(input: StartCycleInput) {
      record('start', input);
      return Promise.resolve({ cycleId: 'fake-cycle-1', workflowId: 'patch-cycle:fake-cycle-1' });
    },
    status(cycleId: string): Promise<CycleStatus> {
      record('status', cycleId);
      return Promise.reject(new CodedError(ErrorCode.NotFound, `no live status for ${cycleId} in the fake`));
    },
    list(): Promise<CycleListItem[]> {
      return Promise.resolve([]);
    },
    approve(cycleId: string, v: ApprovalVote) {
      record('approve', cycleId, v);
      return Promise.resolve().then(() => vote(cycleId, v, 'approve'));
    },
    reject(cycleId: string, v: ApprovalVote) {
      record('reject', cycleId, v);
      return Promise.resolve().then(() => vote(cycleId, v, 'reject'));
    },
    pause(cycleId: string, by: string, reason?: string) {
      record('pause', cycleId, by, reason);
      paused.add(cycleId);
      return Promise.resolve();
    },
    resume(cycleId: string, by: string) {
      record('resume', cycleId, by);
      paused.delete(cycleId);
      return Promise.resolve();
    },
    cancel(cycleId: string, by: string, reason?: string) {
      record('cancel', cycleId, by, reason);
      return Promise.resolve();
    },
    rollback(cycleId: string, by: string, endpointId?: string) {
      record('rollback', cycleId, by, endpointId);
      return Promise.resolve();
    },
    changeRequestState(cycleId: string, event: unknown) {
      record('changeRequestState', cycleId, event);
      return Promise.resolve();
    },
    scan(scope: CycleScope, requestedBy: string) {
      record('scan', scope, requestedBy);
      return Promise.resolve({ workflowId: 'fleet-scan:fake-1' });
    },
  };
}
