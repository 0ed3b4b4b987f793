/**
 * Error wrapping for every activity, applied once where the activity object is assembled
 * (createActivities): a CodedError becomes an ApplicationFailure whose `type` is the code, non-retryable
 * unless the error says retrying may help, with the original error as its cause. Anything else is thrown
 * as it is (Temporal retries it as any other failure).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { isCodedError } from '../domain/errors';

/** A CodedError as an ApplicationFailure typed with its code (non-retryable unless marked so), cause kept. */
export function asFailure(e: unknown): unknown {
  if (isCodedError(e))
    return ApplicationFailure.create({ type: e.code, message: e.message, nonRetryable: !e.retryable, cause: e });
  return e;
}

type AnyActivity = (...args: never[]) => Promise<unknown>;

/** The same activities, each throwing asFailure(error) where it threw `error`. Non-function members are kept as they are. */
export function withFailures<T extends object>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(activities)) {
    if (typeof value !== 'function') {
      wrapped[name] = value;
      continue;
    }
    const fn = value as AnyActivity;
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (e) {
        throw asFailure(e);
      }
    };
  }
  return wrapped as T;
}
