/**
 * The patch cycle's activities: every side effect patchCycleWorkflow, deploymentWaveWorkflow and
 * fleetScanWorkflow ask for. They compose: data access from src/db/, rules from src/domain/ (the
 * assessment and its summary), the ports (agent jobs, chat, change desk, mail) and the change request's
 * words from integrations/servicenow/change-request.ts. Coded errors are turned into ApplicationFailures
 * once, in createActivities (failures.ts). They return aggregates only (counts, sizes, capped reasons),
 * never per-endpoint lists, so workflow history stays small.
 */
import { Context } from '@temporalio/activity';
import { appendAudit } from '../db/audit';
import type { Database } from '../db/client';
import {
  applyCyclePause,
  DrizzleAgentJobs,
  failedJobsOfCycle,
  NO_RELEASE_LIMITS,
  succeededInstallEndpoints,
} from '../db/agent-jobs';
import {
  endpointsOfWaves,
  replaceCycleTargets,
  replaceCycleWaves,
  targetEndpointIds,
  targetHostnames,
  waveMaintenanceWindows,
} from '../db/cycle-plan';
import { catalogPatchFacts, markKnownExploited, missingPatches, patchJobTargets } from '../db/patch-reports';
import {
  complianceBeforeAndNow,
  createCycleRow,
  listExceptions,
  recordComplianceBefore,
  recordStageChange,
  recordVoteRow,
  resolveScope,
  setChangeNumber,
} from '../db/cycles';
import { identitiesWithRole } from '../db/identities';
import { getPolicy } from '../db/policies';
import { staleEndpoints } from '../db/scan-freshness';
import { summarizeAssessment, type AssessResult } from '../domain/assessment';
import type {
  ChangeRequestStateEvent,
  CycleScope,
  CycleStage,
  CycleStatus,
  PatchCycleInput,
  WaveCounts,
} from '../domain/cycle';
import { fleetSplaySeconds } from '../domain/splay';
import {
  effectivePolicy,
  failureThresholdTripped,
  type DeploymentPolicy,
  type FailureThreshold,
} from '../domain/policy';
import type {
  AgentJobs,
  ApprovalRequest,
  ChangeDesk,
  ChangeRef,
  ChatNotifier,
  CloseCode,
  CycleReport,
  DecisionNotice,
  JobKind,
  Mailer,
  PauseQuestion,
  StageUpdate,
} from '../domain/ports';
import { assess, type PatchFacts } from '../domain/risk';
import type { KevIndex } from '../domain/kev';
import { kevCatalog } from '../integrations/kev';
import {
  CHANGE_HOSTNAMES_LIMIT,
  changeRequestOf,
  type ChangeRequestFacts,
} from '../integrations/servicenow/change-request';
import { planWaves } from '../domain/waves';
import { latestJobStart, nextWindow } from '../domain/windows';
import type { Logger } from '../logging';
import { LogChatNotifier } from './chat-log';

export interface CycleActivityDeps {
  database: Database;
  logger: Logger;
  chat?: ChatNotifier;
  changeDesk?: ChangeDesk | null;
  mailer?: Mailer | null;
  agentJobs?: AgentJobs;
  /** Where e-mail reports go when the policy names no addresses (REPORT_RECIPIENTS). */
  reportRecipients?: string[];
  /** The clock (tests pass their own). */
  now?: () => Date;
  /** CISA's KEV catalog (default: the bundled copy, read on first use by these activities). */
  kevCatalog?: () => Promise<KevIndex>;
}

export interface StartCycleResult {
  /** The effective policy (emergency overrides applied). */
  policy: DeploymentPolicy;
  policyVersion: number;
  changeDesk: boolean;
  startedAt: string;
}

export interface WavePlanResult {
  test: { size: number };
  waves: Array<{ index: number; name: string; size: number; batches: number }>;
}

export interface AwaitJobsInput {
  cycleId: string;
  waves: Array<number | null>;
  kind: JobKind;
  until?: string;
  failureThreshold?: FailureThreshold;
  unreachableAfterSeconds: number;
  pollIntervalSeconds: number;
  /** Jobs dispatched held are released within these limits as others finish. */
  limits?: { concurrency: number; batchSize: number };
}

export interface AwaitJobsResult extends WaveCounts {
  tripped: boolean;
  timedOut: boolean;
}

/** Host names named in a reason about endpoints left out. */
const NAMED_HOSTS = 10;
/** Failed endpoints a cycle report lists. */
const REPORTED_FAILURES = 50;

function effectiveScope(scope: CycleScope, policy: DeploymentPolicy): CycleScope {
  return {
    groups: scope.groups?.length ? scope.groups : policy.scope.groups,
    tags: scope.tags?.length ? scope.tags : policy.scope.tags,
    osFamilies: scope.osFamilies?.length ? scope.osFamilies : policy.scope.osFamilies,
    endpointIds: scope.endpointIds,
  };
}

export function createCycleActivities(deps: CycleActivityDeps) {
  const db = deps.database.db;
  const jobs = deps.agentJobs ?? new DrizzleAgentJobs(db);
  const chat = deps.chat ?? new LogChatNotifier(db, deps.logger);
  const desk = deps.changeDesk ?? null;
  const mailer = deps.mailer ?? null;
  const now = deps.now ?? (() => new Date());
  const log = deps.logger;
  const knownExploitedIndex = deps.kevCatalog ?? kevCatalog();

  /** A fleet-wide scan of `count` endpoints spread over time (nothing when it fits in a second). */
  function splayed(count: number): { notBefore?: string; splaySeconds?: number } {
    const splaySeconds = fleetSplaySeconds(count);
    return splaySeconds > 0 ? { notBefore: now().toISOString(), splaySeconds } : {};
  }

  return {
    async startCycle(input: PatchCycleInput & { workflowId: string }): Promise<StartCycleResult> {
      const stored = await getPolicy(db, input.policyName, input.policyVersion);
      const policy = effectivePolicy(stored.policy, input.emergency ?? false);
      await createCycleRow(db, {
        cycleId: input.cycleId,
        workflowId: input.workflowId,
        policyName: stored.name,
        policyVersion: stored.version,
        scope: input.scope,
        emergency: policy.emergency,
        requestedBy: input.requestedBy,
      });
      return { policy, policyVersion: stored.version, changeDesk: desk !== null, startedAt: now().toISOString() };
    },

    /**
     * IDENTIFY: scan jobs (wave null) for the endpoints in scope whose last scan is missing or older than the
     * policy's identify.maxScanAgeHours. Idempotent (job ids per cycle and endpoint). Returns counts.
     */
    async scanStaleEndpoints(input: {
      cycleId: string;
      scope: CycleScope;
      policy: DeploymentPolicy;
    }): Promise<{ inScope: number; stale: number; created: number }> {
      const scoped = await resolveScope(db, effectiveScope(input.scope, input.policy));
      const stale = await staleEndpoints(db, {
        cycleId: input.cycleId,
        endpointIds: scoped.map((e) => e.id),
        maxAgeHours: input.policy.identify.maxScanAgeHours,
        now: now(),
      });
      let created = 0;
      for (let i = 0; i < stale.length; i += 1000) {
        const r = await jobs.dispatch({
          cycleId: input.cycleId,
          wave: null,
          jobs: stale
            .slice(i, i + 1000)
            .map((endpointId) => ({ endpointId, kind: 'scan' as const, payload: { patchIds: [] } })),
          ...splayed(stale.length),
        });
        created += r.created;
      }
      if (stale.length > 0) {
        await appendAudit(db, {
          actor: 'system:workflow',
          action: 'cycle.scan.dispatched',
          subjectType: 'cycle',
          subjectId: input.cycleId,
          details: {
            inScope: scoped.length,
            stale: stale.length,
            created,
            maxScanAgeHours: input.policy.identify.maxScanAgeHours,
          },
        });
      }
      return { inScope: scoped.length, stale: stale.length, created };
    },

    /**
     * IDENTIFY + ASSESS: missing patches in scope, assessed by the domain, the plan written to cycle_targets.
     * With requireFreshScan, endpoints with no fresh scan (see scanStaleEndpoints) are left out and counted.
     */
    async identifyAndAssess(input: {
      cycleId: string;
      scope: CycleScope;
      policy: DeploymentPolicy;
      requireFreshScan?: boolean;
    }): Promise<AssessResult> {
      const policy = input.policy;
      const scope = effectiveScope(input.scope, policy);
      // Before anything is deployed: the report's "compliance before", over the scope the cycle covers.
      await recordComplianceBefore(db, input.cycleId, scope, now());
      const inScope = await resolveScope(db, scope);
      let scoped = inScope;
      let notScanned: AssessResult['notScanned'];
      if (input.requireFreshScan) {
        const stale = new Set(
          await staleEndpoints(db, {
            cycleId: input.cycleId,
            endpointIds: inScope.map((e) => e.id),
            maxAgeHours: policy.identify.maxScanAgeHours,
            now: now(),
          }),
        );
        scoped = inScope.filter((e) => !stale.has(e.id));
        const left = inScope.filter((e) => stale.has(e.id));
        notScanned = { count: left.length, hostnames: left.slice(0, NAMED_HOSTS).map((e) => e.hostname) };
      }
      const missing = await missingPatches(
        db,
        scoped.map((e) => e.id),
      );
      const catalog = await catalogPatchFacts(db, [...new Set(missing.map((m) => m.patchId))]);
      // The known-exploited flag comes from CISA's KEV catalog; the catalog rows learn it too (dashboard counts).
      const kev = await knownExploitedIndex();
      const newlyExploited = catalog.filter((p) => !p.knownExploited && kev.knownExploited(p.cves).length > 0);
      if (newlyExploited.length > 0) {
        await markKnownExploited(
          db,
          newlyExploited.map((p) => p.id),
        );
        for (const p of newlyExploited) p.knownExploited = true;
      }
      // Successors of superseded patches are facts too (the domain drops the superseded one).
      const exceptions = (await listExceptions(db, { now: now() })).map((x) => ({
        code: x.code,
        patchId: x.patchId,
        endpointId: x.endpointId,
        groupName: x.groupName,
        reason: x.reason,
        expiresAt: x.expiresAt,
      }));
      const facts: PatchFacts[] = catalog.map((p) => ({ ...p, knownExploitedCves: kev.knownExploited(p.cves) }));
      const result = assess({
        patches: facts,
        missing,
        endpoints: scoped.map((e) => ({
          id: e.id,
          hostname: e.hostname,
          criticality: e.criticality,
          exposure: (['internal', 'dmz', 'internet'].includes(e.exposure) ? e.exposure : 'internal') as
            'internal' | 'dmz' | 'internet',
          groups: e.groups,
        })),
        exceptions,
        sla: policy.sla,
        now: now().toISOString(),
        filters: policy.filters,
      });
      await replaceCycleTargets(db, input.cycleId, result.patches);

      return {
        endpointsInScope: inScope.length,
        ...(input.requireFreshScan ? { endpointsChecked: scoped.length, notScanned } : {}),
        ...summarizeAssessment({ assessed: result, patches: facts, endpoints: scoped, policy }),
      };
    },

    /** Puts every target endpoint in the test ring (wave 0) or a wave, written to cycle_endpoints; returns sizes. */
    async planCycleWaves(input: { cycleId: string; policy: DeploymentPolicy }): Promise<WavePlanResult> {
      const scoped = await resolveScope(db, { endpointIds: await targetEndpointIds(db, input.cycleId) });
      const plan = planWaves(
        scoped.map((e) => ({ id: e.id, groups: e.groups })),
        input.policy,
      );
      await replaceCycleWaves(db, input.cycleId, plan);
      return {
        test: { size: plan.test.endpointIds.length },
        waves: plan.waves.map((w) => ({
          index: w.index,
          name: w.name,
          size: w.endpointIds.length,
          batches: w.batches.length,
        })),
      };
    },

    /**
     * The next maintenance window of a wave after `after`: the earliest next window among the windows of
     * the groups its endpoints are in. null when none of those groups has a window (deploy any time).
     */
    async nextWaveWindow(input: {
      cycleId: string;
      wave: number;
      after: string;
      expectedInstallMinutes: number;
    }): Promise<{ start: string; end: string; deadline: string } | null> {
      const rows = await waveMaintenanceWindows(db, input.cycleId, input.wave);
      if (rows.length === 0) return null;
      let best: { start: Date; end: Date } | null = null;
      for (const r of rows) {
        const w = nextWindow(
          { rrule: r.rrule, timezone: r.timezone, durationMinutes: r.durationMinutes, blackoutDates: r.blackoutDates },
          new Date(input.after),
        );
        if (w && (!best || w.start < best.start)) best = w;
      }
      if (!best) return null;
      return {
        start: best.start.toISOString(),
        end: best.end.toISOString(),
        deadline: latestJobStart(best, input.expectedInstallMinutes).toISOString(),
      };
    },

    /**
     * Writes the jobs of one wave (idempotent: deterministic ids, ON CONFLICT DO NOTHING).
     * install: every endpoint of the wave with its included patches. rollback / verify: endpoints of the
     * waves whose install succeeded (one endpoint when endpointId is given).
     */
    async dispatchCycleJobs(input: {
      cycleId: string;
      waves: number[];
      kind: 'install' | 'rollback' | 'verify';
      reboot?: DeploymentPolicy['reboot'];
      endpointId?: string;
      notBefore?: string;
      deadline?: string;
      /** Hold the jobs for awaitJobs to release within the policy's concurrency. */
      hold?: boolean;
    }): Promise<{ created: number; existing: number; total: number }> {
      let total = 0;
      let created = 0;
      for (const wave of input.waves) {
        const endpointIds =
          input.kind === 'install'
            ? await endpointsOfWaves(db, input.cycleId, [wave], input.endpointId)
            : await succeededInstallEndpoints(db, input.cycleId, wave, input.endpointId);
        for (let i = 0; i < endpointIds.length; i += 1000) {
          const chunk = endpointIds.slice(i, i + 1000);
          // Each endpoint's packages come from its own agent's report (else the trusted catalog), never another's.
          const rows = await patchJobTargets(db, input.cycleId, chunk);
          const byEndpoint = new Map<
            string,
            Array<{ patchId: string; packages: unknown[]; rebootRequired: boolean }>
          >();
          for (const r of rows) {
            const list = byEndpoint.get(r.endpointId) ?? [];
            list.push({ patchId: r.patchId, packages: r.packages, rebootRequired: r.rebootRequired });
            byEndpoint.set(r.endpointId, list);
          }
          const specs = chunk
            .filter((id) => byEndpoint.has(id))
            .map((id) => ({
              endpointId: id,
              kind: input.kind,
              payload: {
                patches: byEndpoint.get(id)!,
                ...(input.reboot && input.kind === 'install' ? { reboot: input.reboot } : {}),
              } as Record<string, unknown>,
            }));
          const r = await jobs.dispatch({
            cycleId: input.cycleId,
            wave,
            jobs: specs,
            notBefore: input.notBefore,
            deadline: input.deadline,
            ...(input.hold && jobs.release ? { hold: true } : {}),
          });
          total += specs.length;
          created += r.created;
        }
      }
      return { created, existing: total - created, total };
    },

    /** Scan jobs for every active endpoint of a scope (fleet scan; wave null). */
    async dispatchScanJobs(input: {
      scanId: string;
      scope: CycleScope;
      patchIds?: string[];
    }): Promise<{ endpoints: number; created: number }> {
      const scoped = await resolveScope(db, input.scope);
      const r = await jobs.dispatch({
        cycleId: input.scanId,
        wave: null,
        jobs: scoped.map((e) => ({
          endpointId: e.id,
          kind: 'scan' as const,
          payload: { patchIds: input.patchIds ?? [] },
        })),
        ...splayed(scoped.length),
      });
      return { endpoints: scoped.length, created: r.created };
    },

    /**
     * Waits until every job of (cycle, waves, kind) has finished, `until` has passed, or the failure
     * threshold trips; heartbeats the aggregate counts and marks silent endpoints unreachable.
     */
    async awaitJobs(input: AwaitJobsInput): Promise<AwaitJobsResult> {
      const ctx = Context.current();
      const until = input.until ? new Date(input.until).getTime() : Infinity;
      for (;;) {
        let c: WaveCounts = { total: 0, succeeded: 0, failed: 0, unreachable: 0, pending: 0 };
        for (const wave of input.waves) {
          await jobs.expireUnreachable(input.cycleId, wave, input.unreachableAfterSeconds, now());
          const w = await jobs.counts(input.cycleId, wave, input.kind);
          c = {
            total: c.total + w.total,
            succeeded: c.succeeded + w.succeeded,
            failed: c.failed + w.failed,
            unreachable: c.unreachable + w.unreachable,
            pending: c.pending + w.pending,
          };
        }
        ctx.heartbeat(c);
        const tripped = input.failureThreshold ? failureThresholdTripped(input.failureThreshold, c) : false;
        const timedOut = c.pending > 0 && now().getTime() >= until;
        if (c.pending === 0 || tripped || timedOut) {
          await appendAudit(db, {
            actor: 'system:worker',
            action: `cycle.jobs.${input.kind}`,
            subjectType: 'cycle',
            subjectId: input.cycleId,
            details: { waves: input.waves, ...c, tripped, timedOut },
          });
          return { ...c, tripped, timedOut };
        }
        // Judge first, then hand out more: a tripped wave never releases another job.
        // Without limits only a resume leaves held installs behind: release them all.
        if (jobs.release) {
          for (const wave of input.waves) await jobs.release(input.cycleId, wave, input.limits ?? NO_RELEASE_LIMITS);
        }
        await ctx.sleep(Math.max(200, Math.min(input.pollIntervalSeconds * 1000, until - now().getTime())));
      }
    },

    async cancelQueuedJobs(input: { cycleId: string; waves: Array<number | null> }): Promise<number> {
      let n = 0;
      for (const w of input.waves) n += await jobs.cancelQueued(input.cycleId, w);
      return n;
    },

    async resolveApprovers(input: {
      policy: DeploymentPolicy;
    }): Promise<{ approvers: string[]; escalationApprovers: string[] }> {
      const approvers = await identitiesWithRole(db, 'approver', input.policy.approval.approverGroups);
      const escalationApprovers = input.policy.approval.escalationGroups.length
        ? await identitiesWithRole(db, 'approver', input.policy.approval.escalationGroups)
        : [];
      return { approvers, escalationApprovers };
    },

    async recordStage(input: {
      cycleId: string;
      stage: CycleStage;
      detail?: Record<string, unknown>;
      status: CycleStatus;
      reason?: string;
    }): Promise<void> {
      await recordStageChange(db, {
        cycleId: input.cycleId,
        stage: input.stage,
        actor: 'system:workflow',
        detail: input.detail,
        summary: input.status as unknown as Record<string, unknown>,
        reason: input.reason,
      });
    },

    async recordVote(input: { cycleId: string; notice: DecisionNotice; messageRef?: string }): Promise<void> {
      const n = input.notice;
      await recordVoteRow(db, {
        cycleId: input.cycleId,
        identity: n.identity,
        person: n.person,
        channel: n.channel,
        decision: n.decision,
        reason: n.reason,
        at: new Date(n.at),
        messageRef: input.messageRef,
      });
      await chat.recordDecision(n);
    },

    async recordControl(input: {
      cycleId: string;
      action: string;
      by: string;
      details?: Record<string, unknown>;
    }): Promise<void> {
      let details = input.details ?? {};
      if (input.action === 'paused' || input.action === 'resumed') {
        // Mid-wave: a pause holds the installs not yet handed out; a resume lets them go again.
        const seq = typeof details.seq === 'number' ? details.seq : undefined;
        const r = await applyCyclePause(db, input.cycleId, input.action === 'paused', seq);
        details = { ...details, applied: r.applied, ...(input.action === 'paused' ? { installsHeld: r.held } : {}) };
      }
      await appendAudit(db, {
        actor: input.by,
        action: `cycle.${input.action}`,
        subjectType: 'cycle',
        subjectId: input.cycleId,
        details,
      });
    },

    async notifyApprovalRequest(req: ApprovalRequest): Promise<void> {
      await chat.requestApproval(req);
      if (mailer && req.notice !== undefined && deps.reportRecipients?.length)
        await mailer.sendApprovalRequest(req, deps.reportRecipients);
    },
    async notifyStage(update: StageUpdate): Promise<void> {
      await chat.stageUpdate(update);
    },
    async notifyPause(q: PauseQuestion): Promise<void> {
      await chat.pauseQuestion(q);
    },

    /** Opens the change (idempotent by cycle id) when a change desk is configured; null otherwise. */
    async openChange(input: ChangeRequestFacts): Promise<ChangeRef | null> {
      if (!desk || input.policy.change.type === 'none') return null;
      const request = changeRequestOf(input, await targetHostnames(db, input.cycleId, CHANGE_HOSTNAMES_LIMIT));
      const type = request.type;
      const ref = await desk.open(request);
      await setChangeNumber(db, input.cycleId, ref.number);
      await appendAudit(db, {
        actor: 'system:workflow',
        action: 'cycle.change.opened',
        subjectType: 'cycle',
        subjectId: input.cycleId,
        details: { changeNumber: ref.number, type },
      });
      return ref;
    },

    async getChangeState(input: { changeNumber: string }): Promise<ChangeRequestStateEvent | null> {
      if (!desk) return null;
      return desk.get(input.changeNumber);
    },

    async addChangeNote(input: { changeNumber: string; note: string }): Promise<void> {
      if (!desk) return;
      await desk.addWorkNote(input.changeNumber, input.note);
    },

    /** Closes the change (cancels it when never approved); returns the state it is left in, null without a desk. */
    async closeChange(input: {
      changeNumber: string;
      closeCode: CloseCode;
      notes: string;
    }): Promise<ChangeRequestStateEvent['state'] | null> {
      if (!desk) return null;
      await desk.close(input.changeNumber, input.closeCode, input.notes);
      const after = await desk.get(input.changeNumber);
      return after?.state ?? null;
    },

    /** REPORTING: the summary to chat and, when configured, the e-mail report. */
    async sendReport(input: { status: CycleStatus; outcome: CycleStage; emails: string[] }): Promise<void> {
      const s = input.status;
      const report: CycleReport = {
        cycleId: s.cycleId,
        policyName: s.policyName,
        outcome: input.outcome,
        status: { ...s, stage: input.outcome },
        failures: await failedJobsOfCycle(db, s.cycleId, REPORTED_FAILURES),
        ...(await complianceBeforeAndNow(db, s.cycleId, now())),
        ...(s.changeNumber ? { changeNumber: s.changeNumber } : {}),
        startedAt: s.startedAt,
        finishedAt: now().toISOString(),
      };
      await chat.summary(report);
      const to = input.emails.length ? input.emails : (deps.reportRecipients ?? []);
      if (mailer && to.length) await mailer.sendCycleReport(report, to);
      log.info({ cycleId: s.cycleId, outcome: input.outcome }, 'cycle report sent');
    },
  };
}

export type CycleActivities = ReturnType<typeof createCycleActivities>;
