/** Milliseconds since the epoch; injected so the gateway's caches can be tested without waiting. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();
