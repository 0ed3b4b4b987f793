import { describe, expect, it } from 'vitest';
import { fleetSplaySeconds, splayOffsetMs } from './splay';

describe('fleet splay', () => {
  it('is nothing while the jobs fit in a second, then count ÷ rate seconds, capped', () => {
    const o = { ratePerSecond: 500, maxSeconds: 600 };
    expect(fleetSplaySeconds(1, o)).toBe(0);
    expect(fleetSplaySeconds(500, o)).toBe(0);
    expect(fleetSplaySeconds(501, o)).toBe(2);
    expect(fleetSplaySeconds(10_000, o)).toBe(20);
    expect(fleetSplaySeconds(100_000, o)).toBe(200);
    expect(fleetSplaySeconds(10_000_000, o)).toBe(600);
  });

  it('gives an endpoint the same delay every time, inside the splay, and spreads a fleet about evenly', () => {
    expect(splayOffsetMs('ep-1', 60)).toBe(splayOffsetMs('ep-1', 60));
    expect(splayOffsetMs('ep-1', 0)).toBe(0);
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const ms = splayOffsetMs(`endpoint-${i}`, 100);
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThan(100_000);
      buckets[Math.floor(ms / 10_000)]! += 1;
    }
    for (const n of buckets) expect(n).toBeGreaterThan(800);
  });
});
