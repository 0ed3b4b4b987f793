/**
 * Signals, updates and queries of the patch-cycle workflow: the contract the bot, the CLI, the ServiceNow
 * webhook, the dashboard and the tests import. The string names never change once shipped.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ApprovalResult, ApprovalVote, ChangeRequestStateEvent, CycleStatus } from '../domain/cycle';

/** Approve: the validator enforces the approval policy (approver? requester? already voted?), so a refused click gets the reason synchronously. */
export const approveCycleUpdate = defineUpdate<ApprovalResult, [ApprovalVote]>('approveCycle');
/** Reject (reason required). Any rejection vetoes. */
export const rejectCycleUpdate = defineUpdate<ApprovalResult, [ApprovalVote]>('rejectCycle');

export interface ControlInput {
  by: string;
  reason?: string;
}
export const pauseCycleSignal = defineSignal<[ControlInput]>('pauseCycle');
export const resumeCycleSignal = defineSignal<[ControlInput]>('resumeCycle');
export const cancelCycleSignal = defineSignal<[ControlInput]>('cancelCycle');
/** Roll back the whole cycle, or one endpoint when endpointId is given. */
export const rollbackCycleSignal = defineSignal<[ControlInput & { endpointId?: string }]>('rollbackCycle');
/** A ServiceNow change-request state change (webhook or poller). */
export const changeRequestStateSignal = defineSignal<[ChangeRequestStateEvent]>('changeRequestState');

export const cycleStatusQuery = defineQuery<CycleStatus>('cycleStatus');
