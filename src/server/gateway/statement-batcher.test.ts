import { describe, expect, it } from 'vitest';
import { StatementBatcher } from './statement-batcher';

interface Ask {
  key: string;
  tag?: string;
  dropped?(): boolean;
}

/** A fake statement: answers `done-<key>` to every request, recording each call's keys. */
function fakeStatements(opts: { fail?: boolean; ms?: number } = {}) {
  const calls: string[][] = [];
  let running = 0;
  let maxRunning = 0;
  const run = async (requests: Ask[]) => {
    calls.push(requests.map((r) => r.tag ?? r.key));
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((r) => setTimeout(r, opts.ms ?? 5));
    running -= 1;
    if (opts.fail) throw new Error('deadlock detected');
    return requests.map((r) => `done-${r.tag ?? r.key}`);
  };
  return { calls, run, maxRunning: () => maxRunning };
}

describe('StatementBatcher', () => {
  it('requests made in the same turn share one statement; each gets its own answer', async () => {
    const s = fakeStatements();
    const b = new StatementBatcher<Ask, string>({ run: s.run, mayStart: (n) => n < 2 });
    const answers = await Promise.all(['a', 'b', 'c', 'd'].map((key) => b.submit({ key })));
    expect(answers).toEqual(['done-a', 'done-b', 'done-c', 'done-d']);
    expect(s.calls).toEqual([['a', 'b', 'c', 'd']]);
    expect([b.statements, b.carried]).toEqual([1, 4]);
  });

  it('runs at most what mayStart allows at once; requests made meanwhile go into the next statement, up to maxBatch', async () => {
    const s = fakeStatements({ ms: 30 });
    const b = new StatementBatcher<Ask, string>({ run: s.run, mayStart: (n) => n < 1, maxBatch: 3 });
    const first = b.submit({ key: 'a' });
    await new Promise((r) => setImmediate(r));
    const rest = ['b', 'c', 'd', 'e', 'f'].map((key) => b.submit({ key }));
    await Promise.all([first, ...rest]);
    expect(s.calls).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
    expect(s.maxRunning()).toBe(1);
    expect(b.maxInFlight).toBe(1);
  });

  it('while no statement may start, requests wait; one dropped meanwhile is answered null, unrun', async () => {
    const s = fakeStatements();
    let open = false;
    const b = new StatementBatcher<Ask, string>({ run: s.run, mayStart: () => open, retryMs: () => 10 });
    let hungUp = false;
    const deadline = Date.now() + 30;
    const gone = b.submit({ key: 'gone', dropped: () => hungUp });
    const late = b.submit({ key: 'late', dropped: () => Date.now() > deadline });
    const kept = b.submit({ key: 'kept' });
    await new Promise((r) => setTimeout(r, 80));
    expect(b.deferred).toBeGreaterThan(1);
    expect(s.calls).toEqual([]);
    expect(await late).toBeNull();
    hungUp = true;
    open = true;
    expect(await gone).toBeNull();
    expect(await kept).toBe('done-kept');
    expect(s.calls).toEqual([['kept']]);
  });

  it('two requests with one key never share a statement: the later waits for the next, in order', async () => {
    const s = fakeStatements();
    const b = new StatementBatcher<Ask, string>({ run: s.run, mayStart: (n) => n < 1 });
    const answers = await Promise.all([
      b.submit({ key: 'a', tag: 'a1' }),
      b.submit({ key: 'b' }),
      b.submit({ key: 'a', tag: 'a2' }),
      b.submit({ key: 'c' }),
    ]);
    expect(answers).toEqual(['done-a1', 'done-b', 'done-a2', 'done-c']);
    expect(s.calls).toEqual([['a1', 'b', 'c'], ['a2']]);
  });

  it('a failed statement fails every request in it, and the next statement still runs; close answers the waiting with null', async () => {
    const bad = fakeStatements({ fail: true });
    const b = new StatementBatcher<Ask, string>({ run: bad.run, mayStart: () => true });
    const results = await Promise.allSettled([b.submit({ key: 'a' }), b.submit({ key: 'b' })]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    await expect(b.submit({ key: 'c' })).rejects.toThrow('deadlock detected');
    expect(bad.calls).toEqual([['a', 'b'], ['c']]);
    const shut = new StatementBatcher<Ask, string>({ run: bad.run, mayStart: () => false, retryMs: () => 10 });
    const waiting = shut.submit({ key: 'd' });
    shut.close();
    expect(await waiting).toBeNull();
    expect(await shut.submit({ key: 'e' })).toBeNull();
  });
});
