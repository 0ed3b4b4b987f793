import type { AgentJob } from '../../shared/agent-protocol';

/** A held poll that wants a lease. */
export interface BatchedLease {
  endpointId: string;
  /** The agent lost its last answer: its jobs leased before this are offered again (leaseJobs' reclaimBefore). */
  reclaimBefore?: Date | undefined;
  /** The poll cannot take jobs any more (its agent hung up, its answer is late, a newer poll superseded it). */
  cannotAnswer(): boolean;
  /** Past this instant (ms since the epoch) the request is dropped unrun: the poll has given up waiting for it. */
  until: number;
}

interface Pending {
  req: BatchedLease;
  resolve(jobs: AgentJob[] | null): void;
  reject(err: unknown): void;
}

export interface LeaseBatcherOptions {
  /** Leases for these endpoints in one statement (leaseJobsForMany): their jobs by endpoint. */
  run(requests: { endpointId: string; reclaimBefore?: Date | undefined }[]): Promise<Map<string, AgentJob[]>>;
  /** Whether another statement may start now, with `inFlight` running: a connection free, none waiting, under the cap. */
  mayStart(inFlight: number): boolean;
  /** The most endpoints in one statement (default 500). */
  maxBatch?: number;
  /** How long to wait before looking again when a statement may not start (default 25–75 ms). */
  retryMs?: () => number;
}

/**
 * The gateway's leases, batched. When a wave's jobs are written, thousands of held polls wake in the same instant;
 * each used to run a lease statement of its own (thousands of round trips, five at a time, each waiting on a busy
 * event loop). Here every poll that asks in the same turn of the event loop, and every poll that asks while the
 * statements allowed at once are running, goes into one statement of up to `maxBatch` endpoints.
 *
 * A statement starts only when `mayStart` says so (a lease never queues for a database connection: its answer could
 * come after the agent gave up). Requests wait in line meanwhile; one whose poll can no longer answer, or that has
 * waited past its `until`, is dropped unrun (resolved null) before it reaches a statement. An endpoint asked for
 * twice in one statement is leased once; its newest request gets the jobs, the older ones none.
 */
export class LeaseBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  /** Statements run, requests they carried, the most at once, and the times requests had to wait for one. */
  statements = 0;
  leased = 0;
  maxInFlight = 0;
  deferred = 0;

  constructor(private readonly o: LeaseBatcherOptions) {}

  /** The endpoint's jobs (maybe none), or null when the request was dropped unrun. Rejects with the statement's error. */
  lease(req: BatchedLease): Promise<AgentJob[] | null> {
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.schedule();
    });
  }

  /** Requests waiting for a statement. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Answers every waiting request with null and starts no more statements. */
  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    const queued = this.queue;
    this.queue = [];
    for (const p of queued) p.resolve(null);
  }

  /** Runs pump after the current turn of the event loop, so polls woken together share a statement. */
  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.closed) return;
    const now = Date.now();
    this.queue = this.queue.filter((p) => {
      if (!p.req.cannotAnswer() && now <= p.req.until) return true;
      p.resolve(null);
      return false;
    });
    while (this.queue.length > 0 && this.o.mayStart(this.inFlight)) this.start(this.take());
    if (this.queue.length > 0 && !this.retry) {
      this.deferred += 1;
      this.retry = setTimeout(
        () => {
          this.retry = undefined;
          this.pump();
        },
        this.o.retryMs?.() ?? 25 + Math.random() * 50,
      );
    }
  }

  /** The oldest requests, up to maxBatch distinct endpoints, by endpoint (oldest first within each). */
  private take(): Map<string, Pending[]> {
    const max = this.o.maxBatch ?? 500;
    const batch = new Map<string, Pending[]>();
    let i = 0;
    for (; i < this.queue.length; i++) {
      const p = this.queue[i]!;
      const same = batch.get(p.req.endpointId);
      if (same) same.push(p);
      else if (batch.size < max) batch.set(p.req.endpointId, [p]);
      else break;
    }
    this.queue = this.queue.slice(i);
    return batch;
  }

  private start(batch: Map<string, Pending[]>): void {
    this.statements += 1;
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const requests = [...batch.values()].flatMap((ps) =>
      ps.map((p) => ({ endpointId: p.req.endpointId, reclaimBefore: p.req.reclaimBefore })),
    );
    this.leased += requests.length;
    this.o.run(requests).then(
      (jobs) => {
        this.finished();
        for (const [endpointId, ps] of batch)
          ps.forEach((p, i) => p.resolve(i === ps.length - 1 ? (jobs.get(endpointId) ?? []) : []));
      },
      (err: unknown) => {
        this.finished();
        for (const ps of batch.values()) for (const p of ps) p.reject(err);
      },
    );
  }

  private finished(): void {
    this.inFlight -= 1;
    if (this.queue.length > 0) this.schedule();
  }
}
