import { describe, expect, it } from 'vitest';
import type { AgentJob } from '../../shared/agent-protocol';
import { LeaseBatcher } from './lease-batcher';

const job = (id: string): AgentJob => ({
  id,
  kind: 'install',
  payload: {},
  deadline: null,
  leaseExpiresAt: '2030-01-01T00:00:00.000Z',
});
const far = () => Date.now() + 60_000;
const ask = (
  endpointId: string,
  extra: { cannotAnswer?: () => boolean; until?: number; reclaimBefore?: Date } = {},
) => ({
  endpointId,
  cannotAnswer: extra.cannotAnswer ?? (() => false),
  until: extra.until ?? far(),
  ...(extra.reclaimBefore ? { reclaimBefore: extra.reclaimBefore } : {}),
});

/** A fake statement: leases `job-<endpoint>` to every endpoint asked, recording each call's requests. */
function fakeStatements(opts: { fail?: boolean; ms?: number } = {}) {
  const calls: { endpointId: string; reclaimBefore?: Date | undefined }[][] = [];
  let running = 0;
  let maxRunning = 0;
  const run = async (requests: { endpointId: string; reclaimBefore?: Date | undefined }[]) => {
    calls.push(requests);
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((r) => setTimeout(r, opts.ms ?? 5));
    running -= 1;
    if (opts.fail) throw new Error('deadlock detected');
    return new Map(requests.map((r) => [r.endpointId, [job(`job-${r.endpointId}`)]]));
  };
  return { calls, run, maxRunning: () => maxRunning };
}

describe('LeaseBatcher', () => {
  it('polls that ask in the same turn share one statement; each gets its own jobs', async () => {
    const s = fakeStatements();
    const b = new LeaseBatcher({ run: s.run, mayStart: (n) => n < 2 });
    const answers = await Promise.all(['a', 'b', 'c', 'd'].map((e) => b.lease(ask(e))));
    expect(answers.map((js) => js!.map((j) => j.id))).toEqual([['job-a'], ['job-b'], ['job-c'], ['job-d']]);
    expect(s.calls.map((c) => c.map((r) => r.endpointId))).toEqual([['a', 'b', 'c', 'd']]);
    expect(b.statements).toBe(1);
    expect(b.leased).toBe(4);
  });

  it('runs at most what mayStart allows at once; polls asking meanwhile go into the next statement, up to maxBatch', async () => {
    const s = fakeStatements({ ms: 30 });
    const b = new LeaseBatcher({ run: s.run, mayStart: (n) => n < 1, maxBatch: 3 });
    const first = b.lease(ask('a'));
    await new Promise((r) => setImmediate(r));
    const rest = ['b', 'c', 'd', 'e', 'f'].map((e) => b.lease(ask(e)));
    await Promise.all([first, ...rest]);
    expect(s.calls.map((c) => c.map((r) => r.endpointId))).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
    expect(s.maxRunning()).toBe(1);
    expect(b.maxInFlight).toBe(1);
  });

  it('while no statement may start, requests wait; one that cannot answer or whose time is up is dropped unrun', async () => {
    const s = fakeStatements();
    let open = false;
    const b = new LeaseBatcher({ run: s.run, mayStart: () => open, retryMs: () => 10 });
    let hungUp = false;
    const gone = b.lease(ask('gone', { cannotAnswer: () => hungUp }));
    const late = b.lease(ask('late', { until: Date.now() + 30 }));
    const kept = b.lease(ask('kept'));
    await new Promise((r) => setTimeout(r, 80));
    expect(b.deferred).toBeGreaterThan(1);
    expect(s.calls).toEqual([]);
    expect(await late).toBeNull();
    hungUp = true;
    open = true;
    expect(await gone).toBeNull();
    expect((await kept)!.map((j) => j.id)).toEqual(['job-kept']);
    expect(s.calls.map((c) => c.map((r) => r.endpointId))).toEqual([['kept']]);
  });

  it('an endpoint asked for twice in one statement: the newest request gets the jobs, the older none', async () => {
    const s = fakeStatements();
    const b = new LeaseBatcher({ run: s.run, mayStart: () => true });
    const reclaimBefore = new Date('2030-01-01T00:00:00Z');
    const [older, other, newer] = await Promise.all([
      b.lease(ask('a')),
      b.lease(ask('b')),
      b.lease(ask('a', { reclaimBefore })),
    ]);
    expect(older).toEqual([]);
    expect(other!.map((j) => j.id)).toEqual(['job-b']);
    expect(newer!.map((j) => j.id)).toEqual(['job-a']);
    expect(s.calls[0]).toEqual([
      { endpointId: 'a', reclaimBefore: undefined },
      { endpointId: 'a', reclaimBefore },
      { endpointId: 'b', reclaimBefore: undefined },
    ]);
  });

  it('a failed statement fails every request in it, and the next statement still runs; close answers the waiting with null', async () => {
    const bad = fakeStatements({ fail: true });
    const b = new LeaseBatcher({ run: bad.run, mayStart: () => true });
    const results = await Promise.allSettled([b.lease(ask('a')), b.lease(ask('b'))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    const again = b.lease(ask('c'));
    await expect(again).rejects.toThrow('deadlock detected');
    const shut = new LeaseBatcher({ run: bad.run, mayStart: () => false, retryMs: () => 10 });
    const waiting = shut.lease(ask('d'));
    shut.close();
    expect(await waiting).toBeNull();
    expect(await shut.lease(ask('e'))).toBeNull();
  });
});
