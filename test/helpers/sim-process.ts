/**
 * A simulated fleet in a process of its own: `patchops agent-sim --ndjson` (bin/patchops.mjs) as a child process,
 * driven through its standard input and read from its standard output (src/agent-sim/control.ts). The end-to-end
 * suite's agents and the cycle benchmark's fleets run this way, as separate processes on the real agent protocol.
 * What the fleet reports is kept as it arrives: the machines, the installs run (counted on the agent side), the
 * results.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { SimCommand, SimOutput } from '../../src/agent-sim/control';
import type { SimMachine, SimStats } from '../../src/agent-sim/fleet';
import type { FoundPatch } from '../../src/shared/agent-protocol';

const BIN = path.resolve(import.meta.dirname, '../../bin/patchops.mjs');

export interface SimProcessOptions {
  serverUrl: string;
  enrollSecret: string;
  count: number;
  prefix: string;
  waitSeconds?: number;
  /** Install latency per patch, min-max ms (default 10-50). */
  latencyMs?: [number, number];
  failureRate?: number;
  seed?: number;
  /** Shares of Windows, Linux and macOS (default 60:30:10). */
  osMix?: [number, number, number];
  startSpreadSeconds?: number;
  patches?: FoundPatch[];
  failingMachines?: string[];
  /** The child's LOG_LEVEL (its logs go to this process's stderr; default `warn`). */
  logLevel?: string;
  /** The child's working directory (default this process's). */
  cwd?: string;
}

export interface SimProcess {
  child: ChildProcessWithoutNullStreams;
  /** The enrolled endpoints, by machine id, as the process reported them. */
  readonly machines: Map<string, SimMachine>;
  /** Install attempts per `<machine id> <patch id>`, counted by the simulated agents. */
  readonly installsRun: Map<string, number>;
  /** Job results sent (accepted or refused), by kind. */
  readonly results: Map<string, number>;
  /** Results sent, accepted or refused. */
  jobs(): number;
  /** Resolves once every endpoint has enrolled (the process's `ready`); rejects if it exits first. */
  readonly ready: Promise<void>;
  /** From now on, installs on these machine ids fail (and only these); resolves on the process's `ack`. */
  failInstallsOn(machineIds: readonly string[]): Promise<void>;
  /** The fleet's counters (polls, errors, statuses answered, …) as the process has them now. */
  stats(): Promise<SimStats>;
  /** Ends its standard input (which stops the fleet) and waits for it to exit (SIGKILL after 10 s); its exit code. */
  stop(): Promise<number | null>;
}

export async function startSimProcess(o: SimProcessOptions): Promise<SimProcess> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'patchops-sim-'));
  const args = [
    BIN,
    'agent-sim',
    '--ndjson',
    '--server',
    o.serverUrl,
    '--enroll-secret',
    o.enrollSecret,
    '--count',
    String(o.count),
    '--prefix',
    o.prefix,
    '--wait',
    String(o.waitSeconds ?? 2),
    '--latency',
    (o.latencyMs ?? [10, 50]).join('-'),
    '--failure-rate',
    String(o.failureRate ?? 0),
    '--seed',
    String(o.seed ?? 42),
    '--os-mix',
    (o.osMix ?? [60, 30, 10]).join(':'),
    '--start-spread',
    String(o.startSpreadSeconds ?? 0),
  ];
  if (o.patches) {
    const file = path.join(dir, 'patches.json');
    await fs.writeFile(file, JSON.stringify(o.patches));
    args.push('--patches', file);
  }
  if (o.failingMachines?.length) args.push('--fail-on', o.failingMachines.join(','));

  const child = spawn(process.execPath, args, {
    cwd: o.cwd ?? process.cwd(),
    env: { ...process.env, LOG_LEVEL: o.logLevel ?? 'warn' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stderr.pipe(process.stderr, { end: false });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.finally(() => fs.rm(dir, { recursive: true, force: true }));

  const machines = new Map<string, SimMachine>();
  const installsRun = new Map<string, number>();
  const results = new Map<string, number>();
  const waiting: Array<{ type: 'ack' | 'stats'; resolve: (o: SimOutput) => void }> = [];
  let onReady!: () => void;
  let onExitEarly!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onExitEarly = reject;
  });
  void exited.then((code) => onExitEarly(new Error(`agent-sim ${o.prefix} exited (${code}) before it was ready`)));

  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    let e: SimOutput;
    try {
      e = JSON.parse(line) as SimOutput;
    } catch {
      process.stderr.write(`agent-sim ${o.prefix}: not a JSON line: ${line}\n`);
      return;
    }
    if (e.type === 'enrolled') {
      const { type: _type, ...machine } = e;
      machines.set(machine.machineId, machine);
    } else if (e.type === 'install') {
      const key = `${e.machineId} ${e.patchId}`;
      installsRun.set(key, (installsRun.get(key) ?? 0) + 1);
    } else if (e.type === 'result') {
      results.set(e.kind, (results.get(e.kind) ?? 0) + 1);
    } else if (e.type === 'ready') {
      onReady();
    } else if (e.type === 'error') {
      process.stderr.write(`agent-sim ${o.prefix}: ${e.message}\n`);
    } else {
      const i = waiting.findIndex((w) => w.type === e.type);
      if (i >= 0) waiting.splice(i, 1)[0]!.resolve(e);
    }
  });

  const send = (c: SimCommand, answer: 'ack' | 'stats') =>
    new Promise<SimOutput>((resolve, reject) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        reject(new Error(`agent-sim ${o.prefix} has exited`));
        return;
      }
      waiting.push({ type: answer, resolve });
      child.stdin.write(`${JSON.stringify(c)}\n`);
    });

  return {
    child,
    machines,
    installsRun,
    results,
    jobs: () => [...results.values()].reduce((a, b) => a + b, 0),
    ready,
    async failInstallsOn(machineIds) {
      await send({ cmd: 'fail-installs-on', machineIds: [...machineIds] }, 'ack');
    },
    async stats() {
      const e = await send({ cmd: 'stats' }, 'stats');
      return (e as Extract<SimOutput, { type: 'stats' }>).stats;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.stdin.end();
      const killed = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(killed);
      return code;
    },
  };
}
