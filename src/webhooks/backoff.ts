/**
 * When a failed delivery is tried again: 8 attempts in all, the waits growing from a minute to 14 hours (about 23
 * hours from the first attempt to the last), each stretched or shrunk by up to 20% at random so that many
 * deliveries failing together do not come back together.
 */

/** Seconds to wait after attempt 1, 2, … 7; after the 8th the delivery is failed. */
export const RETRY_DELAYS_SECONDS: readonly number[] = [60, 300, 900, 3600, 7200, 21_600, 50_400];

/** Seconds until the next attempt after attempt `attempt` (1-based) failed, or null when none is left. */
export function retryDelaySeconds(
  attempt: number,
  delays: readonly number[] = RETRY_DELAYS_SECONDS,
  random: () => number = Math.random,
): number | null {
  const base = delays[attempt - 1];
  if (base === undefined) return null;
  return base * (0.8 + 0.4 * random());
}
