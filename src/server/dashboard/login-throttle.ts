/**
 * Failed sign-ins kept in this process's memory (a server running alone, and tests), bounded (least recently
 * failed keys are forgotten first) and forgotten after a quiet day. Servers sharing a database use
 * PgLoginThrottle (src/db/login-failures.ts) instead; both follow src/domain/login-backoff.ts.
 */
import { DEFAULT_LOGIN_BACKOFF, failuresLapsed, lockedUntilAfter, type LoginBackoff } from '../../domain/login-backoff';
import type { LoginThrottle } from '../../shared/contracts';

export type LoginThrottleOptions = Partial<LoginBackoff>;

interface Entry {
  failures: number;
  lockedUntil: number;
  lastFailureAt: number;
}

export class MemoryLoginThrottle implements LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly o: LoginBackoff;

  constructor(o: LoginThrottleOptions = {}) {
    this.o = { ...DEFAULT_LOGIN_BACKOFF, ...o };
  }

  retryAfterMs(keys: string[], now: number): Promise<number> {
    let wait = 0;
    for (const k of keys) {
      const e = this.live(k, now);
      if (e && e.lockedUntil > now) wait = Math.max(wait, e.lockedUntil - now);
    }
    return Promise.resolve(wait);
  }

  failure(keys: string[], now: number): Promise<void> {
    for (const k of keys) {
      const e = this.live(k, now) ?? { failures: 0, lockedUntil: 0, lastFailureAt: now };
      e.failures += 1;
      e.lastFailureAt = now;
      e.lockedUntil = Math.max(e.lockedUntil, lockedUntilAfter(e.failures, now, this.o));
      this.entries.delete(k);
      this.entries.set(k, e);
    }
    while (this.entries.size > this.o.maxKeys) this.entries.delete(this.entries.keys().next().value!);
    return Promise.resolve();
  }

  success(userKey: string): Promise<void> {
    this.entries.delete(userKey);
    return Promise.resolve();
  }

  private live(k: string, now: number): Entry | undefined {
    const e = this.entries.get(k);
    if (e && failuresLapsed(e.lastFailureAt, e.lockedUntil, now, this.o)) {
      this.entries.delete(k);
      return undefined;
    }
    return e;
  }
}
