/**
 * Delivery receipts in one process's memory: for a front-end running alone (tests, a front-end without a
 * database). Bounded: past `max` keys the oldest are dropped first.
 */
import type { DeliveryReceipts } from './contracts';

export class MemoryReceipts implements DeliveryReceipts {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly max = 20_000,
  ) {}

  claim(key: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    const at = this.seen.get(key);
    if (at !== undefined && now - at < ttlMs) return Promise.resolve(false);
    this.seen.delete(key);
    this.seen.set(key, now);
    for (const [k, t] of this.seen) {
      if (this.seen.size <= this.max && now - t < ttlMs) break;
      this.seen.delete(k);
    }
    return Promise.resolve(true);
  }

  release(key: string): Promise<void> {
    this.seen.delete(key);
    return Promise.resolve();
  }
}
