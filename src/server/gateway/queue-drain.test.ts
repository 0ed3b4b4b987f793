import { describe, expect, it } from 'vitest';
import { QueueDrain } from './queue-drain';

describe('QueueDrain', () => {
  const at = (t: { now: number }, random = () => 0.5) =>
    new QueueDrain({ windowSeconds: 5, maxSeconds: 60, clock: () => t.now, random });

  it('asks for 1–5 s when nothing is queued or nothing was served lately', () => {
    const t = { now: 1_000_000 };
    expect(at(t, () => 0).retryAfterSeconds(0)).toBe(1);
    expect(at(t, () => 0.99).retryAfterSeconds(500)).toBe(5); // nothing served: no rate to go by
  });

  it('asks for about the time the queue takes to drain at the rate served over the window, 0.3 to 1.2 times it', () => {
    const t = { now: 1_000_000 };
    const d = at(t);
    for (let s = 0; s < 5; s++) {
      for (let i = 0; i < 80; i++) d.served();
      t.now += 1000;
    }
    t.now -= 1000; // still inside the last second
    expect(d.rate()).toBe(80);
    // 2,000 waiting at 80 a second: 25 s, times 0.3 + 0.9 × random (0.75 here).
    expect(d.retryAfterSeconds(2000)).toBe(19);
    const low = new QueueDrain({ windowSeconds: 5, clock: () => t.now, random: () => 0 });
    for (let i = 0; i < 400; i++) low.served();
    expect(low.retryAfterSeconds(2000)).toBe(8); // 400 in the window: 80 a second; 25 s × 0.3, rounded
    // Never past the cap, never under the 1–5 s floor.
    expect(d.retryAfterSeconds(1_000_000)).toBe(60);
    expect(d.retryAfterSeconds(10)).toBe(3);
  });

  it('forgets what was served before the window', () => {
    const t = { now: 1_000_000 };
    const d = at(t);
    for (let i = 0; i < 100; i++) d.served();
    t.now += 3000;
    expect(d.rate()).toBe(20);
    t.now += 5000;
    expect(d.rate()).toBe(0);
  });
});
