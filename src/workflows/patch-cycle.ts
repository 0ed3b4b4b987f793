/**
 * patchCycleWorkflow: one patch cycle, IDENTIFY → ASSESS → TEST → AWAIT_APPROVAL → SCHEDULED →
 * DEPLOYING → VERIFYING → REPORTING → COMPLETED, or FAILED / CANCELLED / ROLLED_BACK.
 * Deterministic: all I/O is in activities, which return aggregates only; history grows with waves
 * and votes, never with endpoints. The cycle's state and message handlers are in cycle/state.ts and
 * cycle/handlers.ts, each stage in a module of its own under cycle/.
 */
import { allHandlersFinished, CancellationScope, condition, patched } from '@temporalio/workflow';
import type { CycleStatus, PatchCycleInput } from '../domain/cycle';
import { CycleStage } from '../domain/cycle';
import { cycleActivities as acts } from './cycle/proxies';
import { approve } from './cycle/approval';
import { changeGate, raiseChange } from './cycle/change-gate';
import { checkpoint } from './cycle/checkpoint';
import { deploy } from './cycle/deploy';
import { registerHandlers } from './cycle/handlers';
import { identifyAndAssess, planWaves, startCycle } from './cycle/identify-assess';
import { endingOf, report, type Ending } from './cycle/report';
import { schedule } from './cycle/schedule';
import { CycleState } from './cycle/state';
import { testRing } from './cycle/test-ring';
import { verify } from './cycle/verify';

/** Patch id (patched()): the workflow returns only once its signal and update handlers have finished. */
const HANDLERS_FINISH = 'handlers-finish-before-return';

export async function patchCycleWorkflow(input: PatchCycleInput): Promise<CycleStatus> {
  const s = new CycleState(input);
  registerHandlers(s, acts);
  let ending: Ending;
  try {
    ending = { stage: CycleStage.COMPLETED, outcome: await run(s) };
  } catch (e) {
    ending = endingOf(s, e);
  }
  await report(s, acts, ending);
  if (patched(HANDLERS_FINISH)) await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
  return s.status;
}

/** The stages in order; returns the outcome of a cycle that completes (a stage throws CycleEnded otherwise). */
async function run(s: CycleState): Promise<string> {
  const start = await startCycle(s, acts);
  const { policy } = start;
  const { assessment, nothingToPatch } = await identifyAndAssess(s, acts, policy);
  if (nothingToPatch !== undefined) return nothingToPatch;
  const { testSize } = await planWaves(s, acts, policy);
  await testRing(s, acts, policy, testSize);

  s.step = 'approval failed';
  await checkpoint(s, acts);
  if (policy.change.type !== 'none' && start.changeDesk) await raiseChange(s, acts, policy, assessment);
  await approve(s, acts, policy, assessment);
  const changeNumber = s.status.changeNumber;
  const notBefore = changeNumber && start.changeDesk ? await changeGate(s, acts, changeNumber) : s.input.notBefore;

  const deployFrom = await schedule(s, acts, notBefore, start.changeDesk);
  await deploy(s, acts, policy, deployFrom);
  return verify(s, acts, policy);
}
