import { describe, expect, it } from 'vitest';
import { retryDelaySeconds, RETRY_DELAYS_SECONDS } from './backoff';

describe('webhook retry backoff', () => {
  it('allows 8 attempts in all, spread over about a day, growing each time', () => {
    expect(RETRY_DELAYS_SECONDS.length + 1).toBe(8);
    const total = RETRY_DELAYS_SECONDS.reduce((a, b) => a + b, 0);
    expect(total / 3600).toBeGreaterThan(20);
    expect(total / 3600).toBeLessThan(26);
    for (let i = 1; i < RETRY_DELAYS_SECONDS.length; i++)
      expect(RETRY_DELAYS_SECONDS[i]!).toBeGreaterThan(RETRY_DELAYS_SECONDS[i - 1]!);
  });

  it('jitters each wait by at most 20% either way, and gives none after the last attempt', () => {
    expect(retryDelaySeconds(1, RETRY_DELAYS_SECONDS, () => 0)).toBeCloseTo(48);
    expect(retryDelaySeconds(1, RETRY_DELAYS_SECONDS, () => 0.999999)).toBeCloseTo(72, 3);
    expect(retryDelaySeconds(7, RETRY_DELAYS_SECONDS, () => 0.5)).toBe(50_400);
    expect(retryDelaySeconds(8)).toBeNull();
  });
});
