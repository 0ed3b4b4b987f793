/**
 * Heartbeats for every activity while it runs. The workflows give their activities a heartbeat timeout (30 s), so
 * an activity whose worker died (SIGKILL, OOM, host lost) is retried on another worker within seconds instead of
 * after its start-to-close timeout (minutes; docs/reliability.md). One wrapper where the activity object is
 * assembled (createActivities), not a call inside each activity.
 *
 * An activity that heartbeats details of its own (awaitJobs: its counts) keeps them: the periodic beat resends
 * the last details it sent. Outside an activity (a unit test calling the function directly), or when the caller set no
 * heartbeat timeout (the SDK: an activity without one must not heartbeat), the wrapper just calls.
 */
import { Context } from '@temporalio/activity';

/** How often a running activity heartbeats; well inside the workflows' 30 s heartbeat timeout. */
export const HEARTBEAT_INTERVAL_MS = 5_000;

/** The current activity's context, or undefined when called outside an activity. */
function currentContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** `fn`, heartbeating every `intervalMs` while a call of it runs inside an activity. */
export function heartbeating<A extends unknown[], R>(
  fn: (...args: A) => Promise<R>,
  intervalMs = HEARTBEAT_INTERVAL_MS,
): (...args: A) => Promise<R> {
  return async function (this: unknown, ...args: A): Promise<R> {
    const ctx = currentContext();
    if (!ctx?.info.heartbeatTimeoutMs) return fn.apply(this, args);
    // Remember the details the activity itself sends, so the periodic beat does not blank them.
    const beat = ctx.heartbeat.bind(ctx);
    let details: unknown;
    // Context.heartbeat is a readonly property of this activity's own context object: replaced for this call only.
    (ctx as { heartbeat: Context['heartbeat'] }).heartbeat = (d?: unknown) => {
      details = d;
      beat(d);
    };
    beat(details);
    // Several beats per timeout even if a caller sets a short one.
    const timer = setInterval(() => beat(details), Math.min(intervalMs, ctx.info.heartbeatTimeoutMs / 3));
    try {
      return await fn.apply(this, args);
    } finally {
      clearInterval(timer);
    }
  };
}

/** Every function of `activities` wrapped by heartbeating(); other members unchanged. */
export function withHeartbeats<T extends object>(activities: T, intervalMs = HEARTBEAT_INTERVAL_MS): T {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(activities)) {
    out[name] =
      typeof value === 'function' ? heartbeating(value as (...args: unknown[]) => Promise<unknown>, intervalMs) : value;
  }
  return out as T;
}
