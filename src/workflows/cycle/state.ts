/**
 * What one patch cycle knows while it runs: the status the query returns and the facts the signal and update
 * handlers (handlers.ts) change. Stages read and change it; nothing else holds cycle state.
 */
import type { ApprovalState } from '../../domain/approval';
import { CycleStage, type ChangeRequestStateEvent, type CycleStatus, type PatchCycleInput } from '../../domain/cycle';
import type { DeploymentPolicy } from '../../domain/policy';
import type { ControlInput } from '../messages';

export const iso = (ms: number = Date.now()): string => new Date(ms).toISOString();

/** Thrown by a stage to end the cycle in `stage` with `outcome` as its reason. */
export class CycleEnded extends Error {
  constructor(
    readonly stage: CycleStage,
    readonly outcome: string,
  ) {
    super(outcome);
  }
}

export class CycleState {
  readonly status: CycleStatus;
  /** The effective policy, once startCycle has returned it. */
  policy: DeploymentPolicy | undefined;
  /** Open while the cycle waits for votes (AWAIT_APPROVAL with a quorum to reach). */
  approval: ApprovalState | undefined;
  cancelRequested: ControlInput | undefined;
  rollbackAll: ControlInput | undefined;
  readonly endpointRollbacks: Array<{ by: string; endpointId: string }> = [];
  /** The last known state of the change request, and a counter that moves whenever it changes. */
  changeEvent: ChangeRequestStateEvent | undefined;
  changeSeq = 0;
  /** True while polls of the change go unanswered (said once per outage). */
  pollFailing = false;
  /** Orders pause/resume controls (recordControl holds or releases the installs not yet handed out). */
  pauseSeq = 0;
  /** The test ring (0) and the waves deployed so far: what a rollback undoes. */
  readonly wavesDone: number[] = [];
  /** What the cycle was doing, for the reason of a failure no step turned into words of its own. */
  step = 'could not start the cycle';

  constructor(readonly input: PatchCycleInput) {
    const startedAt = iso();
    this.status = {
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
  }

  get cycleId(): string {
    return this.input.cycleId;
  }

  /** A cancel or a whole-cycle rollback is waiting to be served. */
  interrupted(): boolean {
    return this.cancelRequested !== undefined || this.rollbackAll !== undefined;
  }

  /** A new state of the change request (webhook signal or a poll that saw something new). */
  noteChange(e: ChangeRequestStateEvent): void {
    this.changeEvent = e;
    this.changeSeq += 1;
    this.status.changeState = e.state;
    this.status.changeNumber ??= e.changeNumber;
  }
}
