/**
 * A simulated fleet (like Fleet's osquery-perf): N virtual endpoints in one process speaking the real agent
 * protocol over HTTP — enrol, inventory, long-poll, results. OS mix; missing-patch sets whose CVEs come from
 * the real CISA KEV catalog (known exploited) plus non-KEV ones; install latency; a failure rate.
 */
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { GatewayClient, GatewayHttpError, isRetryable, jitterAfter, retryDelayMs } from '../agent/client';
import { z } from 'zod';
import {
  foundPatchSchema,
  patchJobPayloadSchema,
  type AgentJob,
  type FoundPatch,
  type JobResult,
} from '../shared/agent-protocol';

export const DEFAULT_KEV_PATH = new URL('../../assets/kev/known_exploited_vulnerabilities.json', import.meta.url)
  .pathname;

export interface SimOptions {
  serverUrl: string;
  enrollSecret: string;
  count: number;
  /** Machine ids are `<prefix>-<n>`: the same prefix re-enrols the same endpoints. */
  prefix?: string;
  waitSeconds?: number;
  installLatencyMs?: [number, number];
  failureRate?: number;
  /** Shares of windows / linux / macos. */
  osMix?: { windows: number; linux: number; macos: number };
  seed?: number;
  kevPath?: string;
  enrollConcurrency?: number;
  /**
   * Every endpoint reports exactly these patches missing (instead of a random pick from the KEV-based catalogs):
   * for tests and demos that need to know what a cycle will find.
   */
  patches?: FoundPatch[];
  /** Machine ids whose installs always fail (whatever `failureRate` says); see also `failInstallsOn`. */
  failingMachines?: readonly string[];
  /** run() starts each endpoint's poll loop at a random moment within this many ms (default 0: all at once). */
  startSpreadMs?: number;
  /** Called on every enrolment, install attempt and result (`patchops agent-sim --ndjson` writes them out). */
  onEvent?: (e: SimEvent) => void;
  log: Logger;
  signal?: AbortSignal;
}

interface KevEntry {
  cveID: string;
  vendorProject: string;
  product: string;
  vulnerabilityName: string;
}

/**
 * The `patches` knob from text (`patchops agent-sim --patches <file.json>`): a JSON array of patches in the
 * agent protocol's shape. Throws an Error naming the first entry that does not fit.
 */
export function parseSimPatches(text: string): FoundPatch[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`the patches file is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const parsed = z.array(foundPatchSchema).min(1).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(
      `the patches file is not a non-empty array of patches (patchId, title, vendor, type, cves, packages): ${issue.path.join('.') || 'the top level'}: ${issue.message}`,
    );
  }
  return parsed.data;
}

/** The text options of `patchops agent-sim`, as given on its command line. */
export interface SimCliOptions {
  server: string;
  enrollSecret: string;
  count: string;
  prefix: string;
  wait: string;
  failureRate: string;
  latency: string;
  seed: string;
  osMix: string;
  startSpread: string;
  failOn?: string;
}

/** `patchops agent-sim`'s options read and checked; throws an Error naming the first option that is wrong. */
export function simOptionsFrom(
  o: SimCliOptions,
): Omit<SimOptions, 'log' | 'signal' | 'patches' | 'onEvent'> & { count: number } {
  const num = (name: string, text: string, ok: (n: number) => boolean, what: string) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || !ok(n))
      throw new Error(`--${name} must be ${what}, not "${text}"`);
    return n;
  };
  const latency = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(o.latency);
  if (!latency || Number(latency[2] ?? latency[1]) < Number(latency[1]))
    throw new Error(`--latency must be min-max in milliseconds (e.g. 200-2000), not "${o.latency}"`);
  const mix = o.osMix.split(':').map((x) => Number(x));
  if (mix.length !== 3 || mix.some((x) => !Number.isFinite(x) || x < 0) || mix.every((x) => x === 0))
    throw new Error(`--os-mix must be three shares windows:linux:macos (e.g. 60:30:10), not "${o.osMix}"`);
  return {
    serverUrl: o.server,
    enrollSecret: o.enrollSecret,
    count: num('count', o.count, (n) => Number.isInteger(n) && n > 0, 'a whole number above 0'),
    prefix: o.prefix,
    waitSeconds: num('wait', o.wait, (n) => Number.isInteger(n) && n >= 0, 'a whole number of seconds'),
    failureRate: num('failure-rate', o.failureRate, (n) => n >= 0 && n <= 1, 'a share between 0 and 1'),
    installLatencyMs: [Number(latency[1]), Number(latency[2] ?? latency[1])],
    seed: num('seed', o.seed, Number.isInteger, 'a whole number'),
    osMix: { windows: mix[0]!, linux: mix[1]!, macos: mix[2]! },
    startSpreadMs: num('start-spread', o.startSpread, (n) => n >= 0, 'a number of seconds') * 1000,
    ...(o.failOn
      ? {
          failingMachines: o.failOn
            .split(',')
            .map((m) => m.trim())
            .filter(Boolean),
        }
      : {}),
  };
}

/** mulberry32: a small seeded generator, so a fleet is the same every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Os = 'windows' | 'linux' | 'macos';

/** Patch catalogs per OS: KEV CVEs of the OS's vendors, and non-KEV ones, with vendor severity words. */
export async function buildCatalogs(kevPath: string, rnd: () => number): Promise<Record<Os, FoundPatch[]>> {
  const kev = (JSON.parse(await readFile(kevPath, 'utf8')) as { vulnerabilities: KevEntry[] }).vulnerabilities;
  const pick = (f: (k: KevEntry) => boolean) => kev.filter(f).slice(0, 60);
  const ms = pick((k) => k.vendorProject === 'Microsoft' && /Windows/i.test(k.product));
  const linux = pick(
    (k) => k.vendorProject === 'Linux' || /OpenSSL|sudo|glibc|Polkit/i.test(`${k.vendorProject} ${k.product}`),
  );
  const apple = pick((k) => k.vendorProject === 'Apple');
  const nonKev = (n: number) => `CVE-${2023 + (n % 3)}-${String(30000 + Math.floor(rnd() * 19999))}`;
  const out: Record<Os, FoundPatch[]> = { windows: [], linux: [], macos: [] };
  for (let i = 0; i < 40; i++) {
    const k = ms[i % Math.max(1, ms.length)];
    const sev = ['Critical', 'Important', 'Moderate', 'Low'][Math.floor(rnd() * 4)]!;
    const kb = `KB50${String(30000 + i * 37).padStart(5, '0')}`;
    out.windows.push({
      patchId: kb,
      title: `${i % 5 === 0 ? 'Cumulative Update' : 'Security Update'} for Windows (${kb})`,
      vendor: 'Microsoft',
      product: 'Windows',
      type: i % 7 === 6 ? 'definition' : i % 5 === 0 ? 'update_rollup' : 'security',
      vendorSeverity: sev,
      severitySource: 'msrc',
      cves: i % 3 === 0 && k ? [k.cveID, nonKev(i)] : [nonKev(i)],
      rebootRequired: i % 2 === 0,
      packages: [{ manager: 'windows-update', name: kb }],
    });
    const l = linux[i % Math.max(1, linux.length)];
    const urg = ['high', 'medium', 'low', 'not yet assigned'][Math.floor(rnd() * 4)]!;
    const dsa = `DSA-${5600 + i}-1`;
    out.linux.push({
      patchId: dsa,
      title: `${dsa} ${l?.product ?? 'openssl'} security update`,
      vendor: 'Debian',
      product: l?.product ?? 'openssl',
      type: 'security',
      vendorSeverity: urg,
      severitySource: 'debian',
      cves: i % 3 === 0 && l ? [l.cveID] : [nonKev(i), nonKev(i + 1)],
      rebootRequired: /kernel/i.test(l?.product ?? ''),
      packages: [
        {
          manager: 'apt',
          name: (l?.product ?? 'openssl').toLowerCase().replace(/[^a-z0-9]+/g, '-'),
          version: `1.${i}.0-1+deb12u1`,
        },
      ],
    });
    const a = apple[i % Math.max(1, apple.length)];
    const mac = `macOS-14.${i % 8}.${i % 3}-${i}`;
    out.macos.push({
      patchId: mac,
      title: `macOS Sonoma 14.${i % 8}.${i % 3}`,
      vendor: 'Apple',
      product: 'macOS',
      type: 'security',
      cvss: Math.round((4 + rnd() * 6) * 10) / 10,
      severitySource: 'apple',
      cves: a && i % 2 === 0 ? [a.cveID] : [nonKev(i)],
      rebootRequired: true,
      packages: [{ manager: 'softwareupdate', name: mac }],
    });
  }
  return out;
}

interface VirtualEndpoint {
  n: number;
  os: Os;
  client: GatewayClient;
  missing: Map<string, FoundPatch>;
  installed: Map<string, FoundPatch>;
}

export interface SimStats {
  enrolled: number;
  polls: number;
  jobs: number;
  failedInstalls: number;
  refusedResults: number;
  errors: number;
  /** Results sent again after a 5xx, a 429 or a network error (each is retried until accepted or refused). */
  resultRetries: number;
  /** Polls the server answered at once with a Retry-After (it held as many polls as it may). */
  pollsNotHeld: number;
  /** Polls that got no answer at all (a time-out, a reset): the next ones say `lost=1` (GatewayClient.poll). */
  lostPolls: number;
  /** Every HTTP error status the gateway answered, counted (503 is backpressure; a 500 is a defect). */
  statuses: Record<number, number>;
}

/** One virtual endpoint as the server knows it, once enrolled. */
export interface SimMachine {
  machineId: string;
  endpointId: string;
  hostname: string;
  os: Os;
}

/** What a simulated fleet did, as it happened: what its agents would have seen, counted on the agent side. */
export type SimEvent =
  | ({ type: 'enrolled' } & SimMachine)
  /** An install of one patch started on this machine (before it succeeds or fails). */
  | { type: 'install'; machineId: string; patchId: string }
  /** A job's result, sent until the server accepted (`accepted`) or refused it. */
  | { type: 'result'; machineId: string; jobId: string; kind: AgentJob['kind']; status: string; accepted: boolean };

export class SimFleet {
  /** Install attempts per `<machine id> <patch id>`, counted on the agent side: a crash-safe server never repeats one. */
  readonly installsRun = new Map<string, number>();
  /** The enrolled endpoints, by machine id, in the order they enrolled. */
  readonly machines = new Map<string, SimMachine>();
  private failing: Set<string>;
  readonly stats: SimStats = {
    enrolled: 0,
    polls: 0,
    jobs: 0,
    failedInstalls: 0,
    refusedResults: 0,
    errors: 0,
    resultRetries: 0,
    pollsNotHeld: 0,
    lostPolls: 0,
    statuses: {},
  };
  private readonly endpoints: VirtualEndpoint[] = [];
  private readonly rnd: () => number;
  constructor(private readonly o: SimOptions) {
    this.rnd = seeded(o.seed ?? 42);
    this.failing = new Set(o.failingMachines ?? []);
    // Every virtual endpoint's waits listen on the one signal: thousands of listeners are expected, not a leak.
    if (o.signal) setMaxListeners(0, o.signal);
  }

  /** From now on, installs on these machine ids fail (and only these: it replaces `failingMachines`). */
  failInstallsOn(machineIds: readonly string[]): void {
    this.failing = new Set(machineIds);
  }

  /** Enrols every virtual endpoint (bounded concurrency) and sends each one's inventory. */
  async enroll(): Promise<void> {
    const catalogs = await buildCatalogs(this.o.kevPath ?? DEFAULT_KEV_PATH, this.rnd);
    const mix = this.o.osMix ?? { windows: 0.6, linux: 0.3, macos: 0.1 };
    const prefix = this.o.prefix ?? 'sim';
    for (let n = 0; n < this.o.count; n++) {
      const r = this.rnd() * (mix.windows + mix.linux + mix.macos);
      const os: Os = r < mix.windows ? 'windows' : r < mix.windows + mix.linux ? 'linux' : 'macos';
      const missing = new Map<string, FoundPatch>();
      if (this.o.patches) {
        for (const p of this.o.patches) missing.set(p.patchId, p);
      } else {
        const k = 3 + Math.floor(this.rnd() * 10);
        for (let i = 0; i < k; i++) {
          const p = catalogs[os][Math.floor(this.rnd() * catalogs[os].length)]!;
          missing.set(p.patchId, p);
        }
      }
      this.endpoints.push({ n, os, client: new GatewayClient(this.o.serverUrl), missing, installed: new Map() });
    }
    let next = 0;
    const worker = async () => {
      while (next < this.endpoints.length && !this.o.signal?.aborted) {
        const ep = this.endpoints[next++]!;
        for (let attempt = 0; ; attempt++) {
          try {
            const hostname = `${prefix}-${ep.os === 'windows' ? 'win' : ep.os === 'linux' ? 'lnx' : 'mac'}-${String(ep.n).padStart(5, '0')}`;
            const res = await ep.client.enroll({
              enrollSecret: this.o.enrollSecret,
              machineId: this.machineIdOf(ep),
              hostname,
              osFamily: ep.os,
              osName: ep.os === 'windows' ? 'Windows 11 Enterprise' : ep.os === 'linux' ? 'Debian GNU/Linux' : 'macOS',
              osVersion: ep.os === 'windows' ? '10.0.22631' : ep.os === 'linux' ? '12' : '14.4',
              arch: ep.os === 'macos' ? 'arm64' : 'x64',
              agentVersion: 'sim-0.1.0',
            });
            ep.client.nodeKey = res.nodeKey;
            const machine = { machineId: this.machineIdOf(ep), endpointId: res.endpointId, hostname, os: ep.os };
            this.machines.set(machine.machineId, machine);
            this.stats.enrolled += 1;
            this.o.onEvent?.({ type: 'enrolled', ...machine });
            break;
          } catch (e) {
            this.count(e);
            if (!isRetryable(e)) throw e;
            if (this.o.signal?.aborted) return;
            await sleep(retryDelayMs(e, attempt, 200, 5000), undefined, { signal: this.o.signal }).catch(
              () => undefined,
            );
          }
        }
      }
    };
    await Promise.all(Array.from({ length: this.o.enrollConcurrency ?? 16 }, worker));
  }

  private machineIdOf(ep: VirtualEndpoint): string {
    return `${this.o.prefix ?? 'sim'}-${String(ep.n).padStart(6, '0')}`;
  }

  private count(e: unknown): void {
    if (e instanceof GatewayHttpError) this.stats.statuses[e.status] = (this.stats.statuses[e.status] ?? 0) + 1;
  }

  /**
   * Sends a result until the server accepts or refuses it: a 503/429 waits its Retry-After (with jitter), never
   * drops it. True when accepted.
   */
  private async report(ep: VirtualEndpoint, job: AgentJob, result: JobResult): Promise<boolean> {
    for (let attempt = 0; !this.o.signal?.aborted; attempt++) {
      try {
        await ep.client.result(job.id, result);
        return true;
      } catch (e) {
        this.count(e);
        if (!isRetryable(e)) {
          // Refused: nothing to retry, but say why.
          this.stats.refusedResults += 1;
          this.o.log.warn(
            { endpoint: ep.n, job: job.id, status: (e as GatewayHttpError).status, err: (e as Error).message },
            'simulated agent: result refused',
          );
          return false;
        }
        this.stats.resultRetries += 1;
        await sleep(retryDelayMs(e, attempt, 200, 5000), undefined, { signal: this.o.signal }).catch(() => undefined);
      }
    }
    return false;
  }

  private async handle(ep: VirtualEndpoint, job: AgentJob): Promise<JobResult> {
    const [lo, hi] = this.o.installLatencyMs ?? [200, 2000];
    if (job.kind === 'scan')
      return { status: 'succeeded', missing: [...ep.missing.values()], patches: [], rebootPending: false };
    if (job.kind === 'reboot') return { status: 'succeeded', patches: [], rebootPending: false };
    const payload = patchJobPayloadSchema.parse(job.payload);
    const patches: JobResult['patches'] = [];
    for (const p of payload.patches) {
      if (job.kind === 'install') {
        const key = `${this.machineIdOf(ep)} ${p.patchId}`;
        this.installsRun.set(key, (this.installsRun.get(key) ?? 0) + 1);
        this.o.onEvent?.({ type: 'install', machineId: this.machineIdOf(ep), patchId: p.patchId });
        await sleep(lo + this.rnd() * (hi - lo), undefined, { signal: this.o.signal }).catch(() => undefined);
        // Drawn even for a failing machine, so the knob leaves every other machine's draws as they were.
        const unlucky = this.rnd() < (this.o.failureRate ?? 0.02);
        if (unlucky || this.failing.has(this.machineIdOf(ep))) {
          this.stats.failedInstalls += 1;
          patches.push({
            patchId: p.patchId,
            state: 'failed',
            error:
              ep.os === 'windows'
                ? 'Windows Update returned 0x80240022 (WU_E_ALL_UPDATES_FAILED)'
                : 'dpkg: error processing package (--configure)',
          });
        } else {
          const f = ep.missing.get(p.patchId);
          ep.missing.delete(p.patchId);
          if (f) ep.installed.set(p.patchId, f);
          patches.push({ patchId: p.patchId, state: 'installed' });
        }
      } else if (job.kind === 'verify') {
        patches.push({ patchId: p.patchId, state: ep.missing.has(p.patchId) ? 'missing' : 'installed' });
      } else {
        const f = ep.installed.get(p.patchId);
        if (f) ep.missing.set(p.patchId, f);
        ep.installed.delete(p.patchId);
        patches.push({ patchId: p.patchId, state: 'rolled_back' });
      }
    }
    const failed = patches.some((p) => p.state === 'failed' || p.state === 'missing');
    return {
      status: failed ? 'failed' : 'succeeded',
      patches,
      rebootPending: false,
      error: failed ? 'one or more patches failed' : undefined,
    };
  }

  private async loop(ep: VirtualEndpoint): Promise<void> {
    let failures = 0;
    while (!this.o.signal?.aborted) {
      try {
        const res = await ep.client.poll(this.o.waitSeconds ?? 30);
        this.stats.polls += 1;
        failures = 0;
        for (const job of res.jobs) {
          const result = await this.handle(ep, job);
          const accepted = await this.report(ep, job, result);
          this.stats.jobs += 1;
          this.o.onEvent?.({
            type: 'result',
            machineId: this.machineIdOf(ep),
            jobId: job.id,
            kind: job.kind,
            status: result.status,
            accepted,
          });
        }
        if (res.jobs.length === 0 && res.retryAfterMs !== undefined) {
          this.stats.pollsNotHeld += 1;
          await sleep(jitterAfter(res.retryAfterMs), undefined, { signal: this.o.signal }).catch(() => undefined);
        }
      } catch (e) {
        if (this.o.signal?.aborted) return;
        this.count(e);
        this.stats.errors += 1;
        if (!(e instanceof GatewayHttpError)) this.stats.lostPolls += 1;
        if (failures === 0)
          this.o.log.warn({ endpoint: ep.n, err: (e as Error).message }, 'simulated agent: gateway error; backing off');
        await sleep(retryDelayMs(e, failures++, 500, 30_000), undefined, { signal: this.o.signal }).catch(
          () => undefined,
        );
      }
    }
  }

  /** Runs every endpoint's poll loop until the signal aborts. */
  async run(): Promise<void> {
    const spread = this.o.startSpreadMs ?? 0;
    await Promise.all(
      this.endpoints.map(async (ep) => {
        if (spread > 0) await sleep(this.rnd() * spread, undefined, { signal: this.o.signal }).catch(() => undefined);
        await this.loop(ep);
      }),
    );
  }
}
