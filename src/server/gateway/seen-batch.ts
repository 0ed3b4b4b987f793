/** Endpoints heard from since the last flush: last-seen is written in one batched UPDATE per refresh. */
export class SeenBatch {
  private seen = new Set<string>();

  add(endpointId: string): void {
    this.seen.add(endpointId);
  }

  /** Takes the batch; hand it back with `putBack` when writing it failed. */
  take(): string[] {
    const batch = [...this.seen];
    this.seen.clear();
    return batch;
  }

  putBack(endpointIds: readonly string[]): void {
    for (const id of endpointIds) this.seen.add(id);
  }

  get size(): number {
    return this.seen.size;
  }
}
