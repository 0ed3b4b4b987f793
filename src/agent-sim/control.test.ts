import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { outputLine, serveCommands, type SimOutput } from './control';
import { SimFleet, simOptionsFrom } from './fleet';

const cli = {
  server: 'http://127.0.0.1:1',
  enrollSecret: 's',
  count: '5',
  prefix: 'p',
  wait: '2',
  failureRate: '0',
  latency: '10-50',
  seed: '7',
  osMix: '1:0:0',
  startSpread: '1.5',
};

describe('simOptionsFrom (agent-sim options)', () => {
  it('reads every option', () => {
    expect(simOptionsFrom({ ...cli, failOn: 'p-000001, p-000002,' })).toEqual({
      serverUrl: 'http://127.0.0.1:1',
      enrollSecret: 's',
      count: 5,
      prefix: 'p',
      waitSeconds: 2,
      failureRate: 0,
      installLatencyMs: [10, 50],
      seed: 7,
      osMix: { windows: 1, linux: 0, macos: 0 },
      startSpreadMs: 1500,
      failingMachines: ['p-000001', 'p-000002'],
    });
    expect(simOptionsFrom({ ...cli, latency: '30' }).installLatencyMs).toEqual([30, 30]);
  });

  it.each([
    ['count', { count: '0' }, /--count must be a whole number above 0, not "0"/],
    ['count', { count: 'ten' }, /--count/],
    ['wait', { wait: '' }, /--wait/],
    ['failure-rate', { failureRate: '1.5' }, /--failure-rate must be a share between 0 and 1/],
    ['latency', { latency: '50-10' }, /--latency must be min-max/],
    ['latency', { latency: 'fast' }, /--latency/],
    ['os-mix', { osMix: '1:0' }, /--os-mix must be three shares/],
    ['os-mix', { osMix: '0:0:0' }, /--os-mix/],
    ['start-spread', { startSpread: '-1' }, /--start-spread/],
  ])('refuses a bad --%s, naming it', (_name, bad, message) => {
    expect(() => simOptionsFrom({ ...cli, ...bad })).toThrow(message);
  });
});

describe('serveCommands (agent-sim --ndjson)', () => {
  const setUp = () => {
    const fleet = new SimFleet({ ...simOptionsFrom(cli), log: pino({ level: 'silent' }) });
    const input = new PassThrough();
    const out: SimOutput[] = [];
    let stopped = 0;
    serveCommands(
      fleet,
      input,
      (o) => out.push(o),
      () => (stopped += 1),
    );
    return { fleet, input, out, stopped: () => stopped };
  };
  const settle = () => new Promise((r) => setImmediate(r));

  it('answers stats and fail-installs-on, reports lines it cannot read, and goes on', async () => {
    const { fleet, input, out, stopped } = setUp();
    input.write('{"cmd":"stats"}\n\nnot json\n{"cmd":"reboot"}\n');
    input.write(`${JSON.stringify({ cmd: 'fail-installs-on', machineIds: ['p-000003'] })}\n`);
    await settle();
    expect(out).toEqual([
      { type: 'stats', stats: fleet.stats },
      { type: 'error', message: 'not JSON: not json' },
      { type: 'error', message: expect.stringMatching(/^not a command \(fail-installs-on, stats, stop\)/) },
      { type: 'ack', cmd: 'fail-installs-on' },
    ]);
    expect(stopped()).toBe(0);
  });

  it('stops on a stop command and when its input ends', async () => {
    const a = setUp();
    a.input.write('{"cmd":"stop"}\n');
    await settle();
    expect(a.out).toEqual([{ type: 'ack', cmd: 'stop' }]);
    expect(a.stopped()).toBe(1);
    const b = setUp();
    b.input.end();
    await settle();
    expect(b.stopped()).toBe(1);
  });

  it('writes one JSON object a line', () => {
    expect(outputLine({ type: 'ready', enrolled: 2 })).toBe('{"type":"ready","enrolled":2}\n');
  });
});
