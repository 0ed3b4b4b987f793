import { systemClock, type Clock } from './clock';

/**
 * How long an overloaded gateway asks an agent to wait (Retry-After, seconds): about as long as the requests already
 * waiting for a database connection take to be served at the rate connections were handed out lately, spread over
 * 0.3 to 1.2 times that so the agents do not come back together and the queue does not run dry (a request waits
 * up to 10 s for a connection before it is refused); never less than 1–5 s, never more than `maxSeconds`. A fixed
 * 1–5 s brought 10,000 results back every few seconds to a queue minutes long: each came back about three times
 * (58,592 results sent again in one 10k cycle), every time parsed and queued again for nothing.
 */
export class QueueDrain {
  /** Connections handed out, per second, over the last `windowSeconds`. */
  private readonly buckets: number[];
  private bucketSecond = 0;

  constructor(
    private readonly opts: { windowSeconds?: number; maxSeconds?: number; clock?: Clock; random?: () => number } = {},
  ) {
    this.buckets = new Array<number>(opts.windowSeconds ?? 5).fill(0);
  }

  private roll(): number {
    const second = Math.floor((this.opts.clock ?? systemClock)() / 1000);
    const n = this.buckets.length;
    if (second - this.bucketSecond >= n) this.buckets.fill(0);
    else for (let s = this.bucketSecond + 1; s <= second; s++) this.buckets[s % n] = 0;
    this.bucketSecond = second;
    return second;
  }

  /** A connection was handed out (pg.Pool's `acquire`). */
  served(): void {
    const second = this.roll();
    this.buckets[second % this.buckets.length]! += 1;
  }

  /** Served per second over the window (the current second counts as a whole one). */
  rate(): number {
    this.roll();
    return this.buckets.reduce((a, b) => a + b, 0) / this.buckets.length;
  }

  /** Retry-After, in whole seconds, for a request refused while `waiting` others wait for a connection. */
  retryAfterSeconds(waiting: number): number {
    const random = this.opts.random ?? Math.random;
    const floor = 1 + Math.floor(random() * 5);
    const rate = this.rate();
    if (rate <= 0 || waiting <= 0) return floor;
    const drain = waiting / rate;
    return Math.min(this.opts.maxSeconds ?? 60, Math.max(floor, Math.round(drain * (0.3 + 0.9 * random()))));
  }
}
