/**
 * Failed sign-ins, counted per key (`ip:<address>` and `user:<name>`), with exponential backoff: the first
 * `freeFailures` failures cost nothing, then each further one locks the key for base·2^k (capped). A
 * success clears the user-name key only, so a guesser cannot reset its address's count by signing in to an
 * account of its own. Kept in memory, bounded (least recently failed keys are forgotten first) and
 * forgotten after a quiet day: see docs/decisions.md for why not in the database.
 */
export interface LoginThrottleOptions {
  freeFailures?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** A key with no failure for this long starts again from zero. */
  forgetAfterMs?: number;
  maxKeys?: number;
}

interface Entry {
  failures: number;
  lockedUntil: number;
  lastFailureAt: number;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly o: Required<LoginThrottleOptions>;

  constructor(o: LoginThrottleOptions = {}) {
    this.o = { freeFailures: 5, baseDelayMs: 1000, maxDelayMs: 15 * 60_000, forgetAfterMs: 24 * 3600_000, maxKeys: 10_000, ...o };
  }

  /** Milliseconds until an attempt for all of `keys` may be made; 0 when it may be made now. */
  retryAfterMs(keys: string[], now: number): number {
    let wait = 0;
    for (const k of keys) {
      const e = this.live(k, now);
      if (e && e.lockedUntil > now) wait = Math.max(wait, e.lockedUntil - now);
    }
    return wait;
  }

  failure(keys: string[], now: number): void {
    for (const k of keys) {
      const e = this.live(k, now) ?? { failures: 0, lockedUntil: 0, lastFailureAt: now };
      e.failures += 1;
      e.lastFailureAt = now;
      const over = e.failures - this.o.freeFailures;
      if (over > 0) e.lockedUntil = now + Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(over - 1, 30));
      this.entries.delete(k);
      this.entries.set(k, e);
    }
    while (this.entries.size > this.o.maxKeys) this.entries.delete(this.entries.keys().next().value!);
  }

  success(userKey: string): void {
    this.entries.delete(userKey);
  }

  private live(k: string, now: number): Entry | undefined {
    const e = this.entries.get(k);
    if (e && now - e.lastFailureAt > this.o.forgetAfterMs && e.lockedUntil <= now) {
      this.entries.delete(k);
      return undefined;
    }
    return e;
  }
}
