/** Long polls waiting for work, by endpoint: each waits until woken or until its time is up. */
export class WorkWaiters {
  private readonly waiters = new Map<string, Set<() => void>>();

  /** Resolves when the endpoint is woken, or after `ms`. Never rejects. */
  wait(endpointId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiters.get(endpointId);
      if (!set) this.waiters.set(endpointId, (set = new Set()));
      const waiting = set;
      const done = () => {
        clearTimeout(timer);
        waiting.delete(done);
        if (waiting.size === 0 && this.waiters.get(endpointId) === waiting) this.waiters.delete(endpointId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiting.add(done);
    });
  }

  /** Answers every poll of the endpoint waiting now. */
  wake(endpointId: string): void {
    const set = this.waiters.get(endpointId);
    if (!set) return;
    this.waiters.delete(endpointId);
    for (const fn of set) fn();
  }

  /** Wakes those of `endpointIds` that have a poll waiting. */
  wakeAny(endpointIds: Iterable<string>): void {
    for (const id of endpointIds) if (this.waiters.has(id)) this.wake(id);
  }

  wakeAll(): void {
    for (const id of [...this.waiters.keys()]) this.wake(id);
  }

  /** Endpoints with a poll waiting. */
  get size(): number {
    return this.waiters.size;
  }
}
