/**
 * The sign-in backoff rule, one place for every store of failures (memory in a lone process, PostgreSQL when
 * servers share it): the first `freeFailures` failures of a key cost nothing, then each further one locks the key
 * for base·2^k, capped; a key with no failure for `forgetAfterMs` starts again from zero.
 */
export interface LoginBackoff {
  freeFailures: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** A key with no failure for this long starts again from zero. */
  forgetAfterMs: number;
  /** At most this many keys are remembered (the least recently failed are forgotten first). */
  maxKeys: number;
}

export const DEFAULT_LOGIN_BACKOFF: LoginBackoff = {
  freeFailures: 5,
  baseDelayMs: 1000,
  maxDelayMs: 15 * 60_000,
  forgetAfterMs: 24 * 3600_000,
  maxKeys: 10_000,
};

/** Until when a key is locked after its `failures`-th failure at `now` (now itself: not locked). */
export function lockedUntilAfter(failures: number, now: number, o: LoginBackoff): number {
  const over = failures - o.freeFailures;
  return over > 0 ? now + Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** Math.min(over - 1, 30)) : now;
}

/** Has a key's count lapsed (quiet for forgetAfterMs and not locked)? */
export function failuresLapsed(lastFailureAt: number, lockedUntil: number, now: number, o: LoginBackoff): boolean {
  return now - lastFailureAt > o.forgetAfterMs && lockedUntil <= now;
}
