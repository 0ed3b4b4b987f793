import { systemClock, type Clock } from './clock';

/**
 * A map whose entries live `ttlMs` from when they were set. Bounded the cheap way: once it holds more than
 * `maxEntries`, the next set clears it (entries are only a shortcut; a miss asks the database).
 */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { value: V; until: number }>();

  constructor(private readonly opts: { ttlMs: number; maxEntries: number; clock?: Clock }) {}

  private now(): number {
    return (this.opts.clock ?? systemClock)();
  }

  /** The live value of `key`, or undefined when it was never set, was deleted or has expired. */
  get(key: K): V | undefined {
    const e = this.entries.get(key);
    return e && e.until > this.now() ? e.value : undefined;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  set(key: K, value: V): void {
    if (this.entries.size > this.opts.maxEntries) this.entries.clear();
    this.entries.set(key, { value, until: this.now() + this.opts.ttlMs });
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
