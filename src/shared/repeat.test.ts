import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { repeatEvery } from './repeat';

describe('repeatEvery', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('runs at start and everyMs after each run ended, never overlapping; a failed run is reported and the loop goes on', async () => {
    const starts: number[] = [];
    const errors: unknown[] = [];
    const r = repeatEvery(
      async () => {
        starts.push(Date.now());
        await new Promise((res) => setTimeout(res, 30)); // each run takes 30 ms
        if (starts.length === 2) throw new Error('boom');
      },
      100,
      { onError: (e) => errors.push(e) },
    );
    const t0 = Date.now();
    await vi.advanceTimersByTimeAsync(400);
    expect(starts.map((t) => t - t0)).toEqual([0, 130, 260, 390]);
    expect(errors).toHaveLength(1);
    const stopped = r.stop(); // the fourth run is in progress: stop waits for it
    await vi.advanceTimersByTimeAsync(1000);
    await stopped;
    expect(starts).toHaveLength(4);
  });

  it('with runAtStart false, the first run is after everyMs; stop waits for a run in progress', async () => {
    let done = 0;
    const r = repeatEvery(
      async () => {
        await new Promise((res) => setTimeout(res, 50));
        done += 1;
      },
      100,
      { runAtStart: false },
    );
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    const stopped = r.stop();
    await vi.advanceTimersByTimeAsync(50);
    await stopped;
    expect(done).toBe(1);
  });
});
