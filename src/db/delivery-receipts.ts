/**
 * Delivery receipts in PostgreSQL (table delivery_receipts): one claim is one statement, so two servers taking
 * the same retry at once cannot both win. Expired rows are claimable again and are swept now and then by the
 * claims themselves (no timer of their own).
 */
import { sql } from 'drizzle-orm';
import type { Db } from './client';
import type { DeliveryReceipts } from '../shared/contracts';

export class PgDeliveryReceipts implements DeliveryReceipts {
  private claims = 0;

  constructor(
    private readonly db: Db,
    /** Sweep expired rows once every this many claims. */
    private readonly sweepEvery = 500,
  ) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const ttl = `${Math.max(0, Math.round(ttlMs))} milliseconds`;
    const res = await this.db.execute<{ key: string }>(sql`
      insert into delivery_receipts (key, seen_at, expires_at) values (${key}, now(), now() + ${ttl}::interval)
      on conflict (key) do update set seen_at = excluded.seen_at, expires_at = excluded.expires_at
        where delivery_receipts.expires_at <= now()
      returning key`);
    if (++this.claims % this.sweepEvery === 0)
      await this.db.execute(sql`delete from delivery_receipts where expires_at <= now()`);
    return res.rows.length > 0;
  }

  async release(key: string): Promise<void> {
    await this.db.execute(sql`delete from delivery_receipts where key = ${key}`);
  }
}
