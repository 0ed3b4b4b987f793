/** One request for a batched statement. */
export interface BatchedRequest {
  /** Requests with the same key never share a statement (one endpoint's): a later one waits for the next. */
  key: string;
  /** The request is no longer wanted (its poll cannot answer, its time is up): dropped unrun, answered null. */
  dropped?(): boolean;
}

interface Pending<Req, Out> {
  req: Req;
  resolve(out: Out | null): void;
  reject(err: unknown): void;
}

export interface StatementBatcherOptions<Req, Out> {
  /** One statement for these requests: an answer for each, in their order. */
  run(requests: Req[]): Promise<Out[]>;
  /** Whether another statement may start now, with `inFlight` running (a connection free, under a cap). */
  mayStart(inFlight: number): boolean;
  /** The most requests in one statement (default 500). */
  maxBatch?: number;
  /** How long to wait before looking again when a statement may not start (default 25–75 ms). */
  retryMs?: () => number;
}

/**
 * Requests that would each be a statement of their own, run as one statement for many: the gateway's leases (a
 * wave's held polls all wake in the same instant) and its install / verify / rollback results (thousands arrive
 * together, and each used to wait on the same counter rows and its own commit).
 *
 * Every request made in the same turn of the event loop, and every request made while the statements allowed at
 * once are running, goes into the next statement, up to `maxBatch`. A statement starts only when `mayStart` says
 * so; requests wait in line meanwhile, and one `dropped` by then is answered null without running. A statement's
 * error rejects every request in it.
 */
export class StatementBatcher<Req extends BatchedRequest, Out> {
  private queue: Pending<Req, Out>[] = [];
  private inFlight = 0;
  private scheduled = false;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  /** Statements run, requests they carried, the most at once, and the times requests had to wait for one. */
  statements = 0;
  carried = 0;
  maxInFlight = 0;
  deferred = 0;

  constructor(private readonly o: StatementBatcherOptions<Req, Out>) {}

  /** The request's answer, or null when it was dropped unrun (or the batcher closed). Rejects with the statement's error. */
  submit(req: Req): Promise<Out | null> {
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

  /** Runs pump after the current turn of the event loop, so requests made together share a statement. */
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
    this.queue = this.queue.filter((p) => {
      if (!p.req.dropped?.()) return true;
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

  /** The oldest requests, up to maxBatch, one per key; the rest stay in line, in order. */
  private take(): Pending<Req, Out>[] {
    const max = this.o.maxBatch ?? 500;
    const batch: Pending<Req, Out>[] = [];
    const keys = new Set<string>();
    const rest: Pending<Req, Out>[] = [];
    for (const p of this.queue) {
      if (batch.length < max && !keys.has(p.req.key)) {
        keys.add(p.req.key);
        batch.push(p);
      } else rest.push(p);
    }
    this.queue = rest;
    return batch;
  }

  private start(batch: Pending<Req, Out>[]): void {
    this.statements += 1;
    this.carried += batch.length;
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.o.run(batch.map((p) => p.req)).then(
      (outs) => {
        this.finished();
        batch.forEach((p, i) => p.resolve(outs[i] ?? null));
      },
      (err: unknown) => {
        this.finished();
        for (const p of batch) p.reject(err);
      },
    );
  }

  private finished(): void {
    this.inFlight -= 1;
    if (this.queue.length > 0) this.schedule();
  }
}
