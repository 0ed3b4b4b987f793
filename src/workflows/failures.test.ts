import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, TimeoutFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { failureMessage, isOutage } from './failures';

const activity = (retryState: ActivityFailure['retryState'], cause: Error) =>
  new ActivityFailure('Activity task failed', 'openChange', '13', retryState, 'worker@host', cause);
const refused = ApplicationFailure.create({
  type: 'INTEGRATION_FAILED',
  message: 'ServiceNow POST /api/sn_chg_rest/change/normal returned 403: Operation Failed: no role.',
  nonRetryable: true,
});
const unanswered = ApplicationFailure.create({
  type: 'INTEGRATION_FAILED',
  message: 'ServiceNow POST /api/sn_chg_rest/change/normal returned 503: Service Unavailable.',
  nonRetryable: false,
});

describe('failureMessage', () => {
  it('gives the innermost words, not "Activity task failed", without a closing full stop', () => {
    expect(failureMessage(activity('NON_RETRYABLE_FAILURE', refused))).toBe(
      'ServiceNow POST /api/sn_chg_rest/change/normal returned 403: Operation Failed: no role',
    );
  });
  it('looks through a failed child workflow to the activity failure inside it', () => {
    const child = new ChildWorkflowFailure(
      'default',
      { workflowId: 'w', runId: 'r' },
      'deploymentWaveWorkflow',
      'NON_RETRYABLE_FAILURE',
      activity('NON_RETRYABLE_FAILURE', ApplicationFailure.nonRetryable('agent_jobs is read-only', 'DB')),
    );
    expect(failureMessage(child)).toBe('agent_jobs is read-only');
  });
  it('names a timeout by its kind, and takes a plain error as it is', () => {
    expect(failureMessage(activity('TIMEOUT', new TimeoutFailure(undefined, undefined, 'START_TO_CLOSE')))).toBe(
      'timed out (start to close)',
    );
    expect(failureMessage(new TypeError('x is undefined'))).toBe('x is undefined');
  });
});

describe('isOutage', () => {
  it('retries run out on a retryable error or a timeout: an outage worth asking about', () => {
    expect(isOutage(activity('MAXIMUM_ATTEMPTS_REACHED', unanswered))).toBe(true);
    expect(isOutage(activity('TIMEOUT', new TimeoutFailure(undefined, undefined, 'START_TO_CLOSE')))).toBe(true);
  });
  it('a non-retryable error is a refusal; anything that is not an activity failure is not an outage', () => {
    expect(isOutage(activity('NON_RETRYABLE_FAILURE', refused))).toBe(false);
    expect(isOutage(new Error('socket hang up'))).toBe(false);
  });
});
