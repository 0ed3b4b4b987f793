/**
 * Ports for the servers tests start (patchops, Temporal dev servers, PostgreSQL), chosen below Linux's ephemeral
 * range (32768–60999). A port the OS hands out as "free" (listen on 0) lies in that range, where, between the pick
 * and the bind, an outgoing connection or a Temporal dev server's own internal services (which pick ports there
 * themselves) may take it: CI once failed on `bind: address already in use` for a dev server's UI port that way.
 */
import { portFree } from '../../src/temporal/dev-server';

const LOW = 20_000;
const HIGH = 32_000;
const handedOut = new Set<number>();

/** A port that is free now, not handed out before by this process, and outside the ephemeral range. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handedOut.has(port)) continue;
    if (await portFree(host, port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${LOW} and ${HIGH} on ${host}`);
}
