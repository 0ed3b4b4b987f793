/**
 * The sign-in throttle's counts in PostgreSQL (table login_failures), shared by every server process; the
 * backoff rule is the domain's (src/domain/login-backoff.ts), so this and the in-memory throttle agree. A
 * failure reads and writes its keys in one transaction (row locks), so two servers counting one key at once add
 * both failures. Swept every `sweepEvery` failures: lapsed keys, and the least recently failed beyond maxKeys.
 */
import { sql } from 'drizzle-orm';
import type { Db } from './client';
import { DEFAULT_LOGIN_BACKOFF, failuresLapsed, lockedUntilAfter, type LoginBackoff } from '../domain/login-backoff';
import type { LoginThrottle } from '../shared/contracts';

type Row = {
  key: string;
  failures: number;
  locked_until: string | Date;
  last_failure_at: string | Date;
};

const ms = (v: string | Date) => new Date(v).getTime();

export class PgLoginThrottle implements LoginThrottle {
  private readonly o: LoginBackoff;
  private failuresSinceSweep = 0;

  constructor(
    private readonly db: Db,
    o: Partial<LoginBackoff> = {},
    private readonly sweepEvery = 200,
  ) {
    this.o = { ...DEFAULT_LOGIN_BACKOFF, ...o };
  }

  async retryAfterMs(keys: string[], now: number): Promise<number> {
    if (keys.length === 0) return 0;
    const rows = (
      await this.db.execute<Row>(
        sql`select key, failures, locked_until, last_failure_at from login_failures where key = any(${sql.param(keys)}::text[])`,
      )
    ).rows;
    let wait = 0;
    for (const r of rows) {
      if (failuresLapsed(ms(r.last_failure_at), ms(r.locked_until), now, this.o)) continue;
      wait = Math.max(wait, ms(r.locked_until) - now);
    }
    return wait;
  }

  async failure(keys: string[], now: number): Promise<void> {
    const at = new Date(now).toISOString();
    await this.db.transaction(async (tx) => {
      for (const key of [...new Set(keys)].sort()) {
        await tx.execute(
          sql`insert into login_failures (key, failures, locked_until, last_failure_at) values (${key}, 0, ${at}::timestamptz, ${at}::timestamptz) on conflict (key) do nothing`,
        );
        const r = (
          await tx.execute<Row>(
            sql`select key, failures, locked_until, last_failure_at from login_failures where key = ${key} for update`,
          )
        ).rows[0]!;
        const lapsed = failuresLapsed(ms(r.last_failure_at), ms(r.locked_until), now, this.o);
        const failures = (lapsed ? 0 : r.failures) + 1;
        const lockedUntil = Math.max(lapsed ? now : ms(r.locked_until), lockedUntilAfter(failures, now, this.o));
        await tx.execute(
          sql`update login_failures set failures = ${failures}, locked_until = ${new Date(lockedUntil).toISOString()}::timestamptz, last_failure_at = ${at}::timestamptz where key = ${key}`,
        );
      }
    });
    if (++this.failuresSinceSweep >= this.sweepEvery) {
      this.failuresSinceSweep = 0;
      await this.sweep(now);
    }
  }

  async success(userKey: string): Promise<void> {
    await this.db.execute(sql`delete from login_failures where key = ${userKey}`);
  }

  /** Forgets lapsed keys and, past maxKeys, the least recently failed. */
  async sweep(now: number): Promise<void> {
    const at = new Date(now).toISOString();
    await this.db.execute(
      sql`delete from login_failures where last_failure_at < ${at}::timestamptz - ${`${this.o.forgetAfterMs} milliseconds`}::interval and locked_until <= ${at}::timestamptz`,
    );
    await this.db.execute(
      sql`delete from login_failures where key in (select key from login_failures order by last_failure_at desc, key offset ${this.o.maxKeys})`,
    );
  }
}
