import { systemClock, type Clock } from './clock';

/** A value read again from its source at most every `everyMs` (the first `reloadIfDue` always reads it). */
export class ReloadedValue<T> {
  private loadedAt = -Infinity;

  constructor(
    public value: T,
    private readonly everyMs: number,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Reads the value again when it is due; a failed load keeps the old value and is tried again next time. */
  async reloadIfDue(load: () => Promise<T>): Promise<void> {
    if (this.clock() - this.loadedAt < this.everyMs) return;
    this.value = await load();
    this.loadedAt = this.clock();
  }
}
