import { systemClock, type Clock } from './clock';

/** How long a work hint that could not be refreshed is still used before every poll asks the database itself. */
export const HINT_STALE_MS = 15_000;

/**
 * The in-process "has work" set: which endpoints have a job an agent could be handed now, refreshed from the
 * database every few hundred ms. A poll only runs a lease query for an endpoint the hint names (or when the hint is
 * not usable). Correctness does not depend on it: the lease itself is the database's claim.
 */
export class WorkHint {
  private withWork = new Set<string>();
  private ready = false;
  private refreshedAt = -Infinity;

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly staleMs = HINT_STALE_MS,
  ) {}

  /** The database's answer: exactly these endpoints have work now. */
  refreshed(endpointIds: readonly string[]): void {
    this.withWork = new Set(endpointIds);
    this.ready = true;
    this.refreshedAt = this.clock();
  }

  /**
   * The refresh failed. The hint is kept for a while: when the refresh failed because the database is overloaded, a
   * lease query per poll is the worst thing to add, and a hint a few seconds old only delays wake-ups. Past
   * `staleMs` every poll asks the database.
   */
  refreshFailed(): void {
    if (this.clock() - this.refreshedAt > this.staleMs) this.ready = false;
  }

  /** Whether a poll of this endpoint should run a lease query. */
  mayHaveWork(endpointId: string): boolean {
    return !this.ready || this.withWork.has(endpointId);
  }

  /** Jobs were just dispatched for the endpoint. */
  add(endpointId: string): void {
    this.withWork.add(endpointId);
  }

  /** A lease query found nothing for the endpoint. */
  noWork(endpointId: string): void {
    this.withWork.delete(endpointId);
  }

  get size(): number {
    return this.withWork.size;
  }
}
