/**
 * Spreading a fleet-wide dispatch over time (a splay, as osquery and Fleet do): 100,000 scan jobs handed out at
 * once would have 100,000 agents scanning and reporting in the same minute. Each job waits a delay of its own,
 * the same for an endpoint on every retry of the dispatch (a hash of its id, not a random draw), so a retried
 * activity writes the same rows.
 */
/** Jobs handed out per second at most, on average, by a splayed fleet dispatch; and the longest splay. */
export const FLEET_DISPATCH = { ratePerSecond: 500, maxSeconds: 600 } as const;

/** The splay for dispatching `count` jobs at `ratePerSecond` (0 while they fit in one second), capped at `maxSeconds`. */
export function fleetSplaySeconds(
  count: number,
  o: { ratePerSecond: number; maxSeconds: number } = FLEET_DISPATCH,
): number {
  if (count <= o.ratePerSecond || o.ratePerSecond <= 0) return 0;
  return Math.min(o.maxSeconds, Math.ceil(count / o.ratePerSecond));
}

/** The endpoint's own delay within a splay of `splaySeconds`, in milliseconds, in [0, splaySeconds·1000). */
export function splayOffsetMs(endpointId: string, splaySeconds: number): number {
  if (splaySeconds <= 0) return 0;
  return fnv1a(endpointId) % Math.round(splaySeconds * 1000);
}

/** 32-bit FNV-1a: pure (the domain stays free of Node modules), and spreads short ids evenly enough. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
