import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { describe, expect, it } from 'vitest';
import { heartbeating, withHeartbeats } from './heartbeat';

describe('withHeartbeats', () => {
  it('heartbeats at once and then every interval while the activity runs, and stops when it returns', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 30_000 });
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const acts = withHeartbeats({ slow: async (ms: number) => (await sleep(ms), `slept ${ms}`) }, 20);
    expect(await env.run(acts.slow, 130)).toBe('slept 130');
    // One at the start, then one each 20 ms over 130 ms (timers on a loaded machine may fire late: at least 3).
    expect(beats.length).toBeGreaterThanOrEqual(4);
    expect(beats.length).toBeLessThanOrEqual(8);
    const after = beats.length;
    await sleep(80);
    expect(beats.length).toBe(after);
  });

  it('resends the details the activity heartbeats itself instead of blanking them', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 30_000 });
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const run = heartbeating(async () => {
      Context.current().heartbeat({ pending: 3 });
      await sleep(70);
    }, 20);
    await env.run(run);
    expect(beats[0]).toBeUndefined();
    expect(beats[1]).toEqual({ pending: 3 });
    expect(beats.length).toBeGreaterThanOrEqual(3);
    expect(beats.slice(1).every((d) => JSON.stringify(d) === '{"pending":3}')).toBe(true);
  });

  it('stops heartbeating when the activity throws, and passes the error on', async () => {
    // Quiet: the mock logs the activity's failure, which this case expects.
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 30_000 }, { logger: new DefaultLogger('ERROR') });
    let beats = 0;
    env.on('heartbeat', () => beats++);
    const acts = withHeartbeats({ broken: async () => Promise.reject(new Error('database down')) }, 10);
    await expect(env.run(acts.broken)).rejects.toThrow('database down');
    const after = beats;
    await sleep(50);
    expect(beats).toBe(after);
  });

  it('does not heartbeat an activity started without a heartbeat timeout', async () => {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs: undefined });
    let beats = 0;
    env.on('heartbeat', () => beats++);
    const acts = withHeartbeats({ slow: async () => sleep(60) }, 10);
    await env.run(acts.slow);
    expect(beats).toBe(0);
  });

  it('outside an activity (a unit test calling it directly) just calls the function', async () => {
    const acts = withHeartbeats({ add: async (a: number, b: number) => a + b, label: 'kept' as unknown });
    expect(await acts.add(2, 3)).toBe(5);
    expect(acts.label).toBe('kept');
  });
});
