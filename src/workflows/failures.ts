/**
 * How the cycle reads a failed activity: the words to show (the deepest cause's message, e.g. ServiceNow's
 * own error) and whether it was an outage (retries ran out on a retryable error or a timeout: worth asking
 * a person to retry) or a refusal (a non-retryable error: retrying cannot help, the cycle ends FAILED).
 * Workflow-safe: only @temporalio/workflow's failure classes.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';

/** The innermost message of a failure chain: "ServiceNow POST … returned 403: Operation Failed: …", not "Activity task failed". */
export function failureMessage(e: unknown): string {
  let cur: unknown = e;
  let text = e instanceof Error ? e.message : String(e);
  for (let depth = 0; cur instanceof Error && depth < 10; depth++) {
    if (cur instanceof TimeoutFailure) return `timed out (${String(cur.timeoutType).toLowerCase().replace(/_/g, ' ')})`;
    if (cur.message && !(cur instanceof ActivityFailure)) text = cur.message;
    cur = cur.cause;
  }
  return text.replace(/\s+$/, '').replace(/\.$/, '');
}

/** True when retries ran out on an error that says retrying may help (5xx, 429, a network error, a timeout). */
export function isOutage(e: unknown): boolean {
  if (!(e instanceof ActivityFailure)) return false;
  if (e.retryState === 'NON_RETRYABLE_FAILURE') return false;
  const cause = e.cause;
  if (cause instanceof TimeoutFailure) return true;
  if (cause instanceof ApplicationFailure) return !cause.nonRetryable;
  return false;
}
