/**
 * The endpoint agent: enrols once (node key kept in the state directory), reports inventory, long-polls the
 * gateway for jobs, runs them and reports results; backs off with jitter while the server is away.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AgentJob, JobResult } from '../shared/agent-protocol';
import { AGENT_PROTOCOL_VERSION } from '../shared/agent-protocol';
import { createBackends } from './backends/index';
import type { Backend } from './backends/types';
import { backoffMs, GatewayClient, GatewayHttpError } from './client';
import { availableBackends, detectPlatform, type PlatformFacts } from './platform';
import { SystemRebooter, type Rebooter } from './reboot';
import { JobRunner, type FileInstaller } from './runner';
import { StateStore, type AgentState } from './state';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  serverUrl: string;
  enrollSecret?: string;
  stateDir: string;
  log: Logger;
  /** Override detection (tests). */
  platform?: PlatformFacts;
  /** Override the detected machine id / hostname (cloned images, several agents on one machine in tests). */
  machineId?: string;
  hostname?: string;
  backends?: Map<string, Backend>;
  aptRoot?: string;
  rebooter?: Rebooter;
  fileInstaller?: FileInstaller;
  waitSeconds?: number;
  inventoryEveryMs?: number;
  signal?: AbortSignal;
  fetchImpl?: typeof fetch;
  /** Called after each job's result is accepted (tests, metrics). */
  onJobDone?: (job: AgentJob, result: JobResult) => void;
}

export class Agent {
  private state!: AgentState;
  private readonly store: StateStore;
  private readonly client: GatewayClient;
  private facts!: PlatformFacts;
  private backends!: Map<string, Backend>;
  private runner!: JobRunner;
  private distributionPoints: string[] = [];
  private failures = 0;

  constructor(private readonly o: AgentOptions) {
    this.store = new StateStore(o.stateDir);
    this.client = new GatewayClient(o.serverUrl, o.fetchImpl);
  }

  get endpointId(): string {
    return this.state.endpointId;
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.o.signal }).catch(() => undefined);
  }

  private get stopped(): boolean {
    return this.o.signal?.aborted ?? false;
  }

  /** Enrols if there is no usable identity for this server; retries with backoff while the server is away. */
  async start(): Promise<void> {
    this.facts = { ...(this.o.platform ?? (await detectPlatform())) };
    if (this.o.machineId) this.facts.machineId = this.o.machineId;
    if (this.o.hostname) this.facts.hostname = this.o.hostname;
    const saved = await this.store.load();
    if (saved && saved.serverUrl === this.o.serverUrl && saved.machineId === this.facts.machineId) this.state = saved;
    else await this.enroll();
    this.client.nodeKey = this.state.nodeKey;
    this.backends = this.o.backends ?? createBackends(await availableBackends(this.facts), { aptRoot: this.o.aptRoot });
    this.runner = new JobRunner({
      backends: this.backends,
      getState: () => this.state,
      updateState: async (p) => {
        this.state = { ...this.state, ...p };
        await this.store.save(this.state);
      },
      rebooter: this.o.rebooter ?? new SystemRebooter(),
      fetchManifest: () => this.client.manifest(),
      sources: () => [...this.distributionPoints, this.o.serverUrl],
      downloadDir: this.store.downloads,
      deferFile: this.store.deferFile,
      fileInstaller: this.o.fileInstaller,
      fetchImpl: this.o.fetchImpl,
      log: this.o.log,
    });
    this.o.log.info({ endpointId: this.state.endpointId, backends: [...new Set([...this.backends.values()].map((b) => b.name))] }, 'agent started');
  }

  private async enroll(): Promise<void> {
    if (!this.o.enrollSecret) throw new Error(`this agent is not enrolled with ${this.o.serverUrl} (no identity in ${this.store.file}): pass --enroll-secret`);
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.client.enroll({
          enrollSecret: this.o.enrollSecret,
          machineId: this.facts.machineId,
          hostname: this.facts.hostname,
          osFamily: this.facts.osFamily,
          osName: this.facts.osName,
          osVersion: this.facts.osVersion,
          arch: this.facts.arch,
          agentVersion: AGENT_VERSION,
          protocolVersion: AGENT_PROTOCOL_VERSION,
        });
        // A re-enrolment keeps the pinned key when it already had one for this server (the key is pinned, not replaced).
        const pinned = this.state?.serverUrl === this.o.serverUrl ? this.state.manifestSigningKey : res.manifestSigningKey;
        this.state = {
          serverUrl: this.o.serverUrl,
          endpointId: res.endpointId,
          nodeKey: res.nodeKey,
          manifestSigningKey: pinned,
          machineId: this.facts.machineId,
          lastManifestVersion: this.state?.lastManifestVersion ?? 0,
          previousVersions: this.state?.previousVersions ?? {},
          rebootDeferrals: this.state?.rebootDeferrals ?? 0,
        };
        await this.store.save(this.state);
        this.client.nodeKey = res.nodeKey;
        this.o.log.info({ endpointId: res.endpointId }, 'agent enrolled');
        return;
      } catch (e) {
        if (e instanceof GatewayHttpError && (e.status === 401 || e.status === 400)) throw new Error(`enrolment refused: ${e.message}`, { cause: e });
        if (this.stopped) throw e;
        const wait = backoffMs(attempt);
        this.o.log.warn({ err: (e as Error).message, retryInMs: wait }, 'server unreachable for enrolment; retrying');
        await this.pause(wait);
      }
    }
  }

  async sendInventory(): Promise<void> {
    const software: Array<{ source: string; name: string; version: string; vendor?: string }> = [];
    for (const b of new Set(this.backends.values())) software.push(...(await b.inventory().catch(() => [])));
    let pendingReboot = false;
    for (const b of new Set(this.backends.values())) if (b.rebootPending && (await b.rebootPending().catch(() => false))) pendingReboot = true;
    await this.client.inventory({ hostname: this.facts.hostname, osName: this.facts.osName, osVersion: this.facts.osVersion, arch: this.facts.arch, agentVersion: AGENT_VERSION, pendingReboot, software });
  }

  private async report(job: AgentJob, result: JobResult): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const r = await this.client.result(job.id, result);
        this.o.log.info({ jobId: job.id, kind: job.kind, status: result.status, outcome: r.outcome }, 'job result reported');
        this.o.onJobDone?.(job, result);
        return;
      } catch (e) {
        if (e instanceof GatewayHttpError && [400, 403, 404, 409].includes(e.status)) {
          this.o.log.warn({ jobId: job.id, err: e.message }, 'the server refused the job result; dropping it');
          return;
        }
        if (e instanceof GatewayHttpError && e.status === 401) await this.reEnroll();
        const wait = backoffMs(attempt);
        this.o.log.warn({ jobId: job.id, err: (e as Error).message, retryInMs: wait }, 'could not report the job result; retrying');
        await this.pause(wait);
      }
    }
  }

  private async reEnroll(): Promise<void> {
    if (!this.o.enrollSecret) throw new Error('the server no longer accepts this agent\'s node key and no enrol secret was given to re-enrol: pass --enroll-secret');
    this.o.log.warn('node key refused; enrolling again');
    await this.enroll();
  }

  /** One poll and the jobs it brought. Returns how many jobs ran. */
  async pollOnce(waitSeconds = this.o.waitSeconds ?? 30): Promise<number> {
    const res = await this.client.poll(waitSeconds);
    this.distributionPoints = res.distributionPoints;
    for (const job of res.jobs) {
      if (this.stopped) break;
      this.o.log.info({ jobId: job.id, kind: job.kind }, 'job started');
      const result = await this.runner.run(job);
      await this.report(job, result);
    }
    return res.jobs.length;
  }

  /** Runs until the signal aborts. */
  async run(): Promise<void> {
    await this.start();
    let lastInventory = 0;
    while (!this.stopped) {
      try {
        if (Date.now() - lastInventory > (this.o.inventoryEveryMs ?? 6 * 3600_000)) {
          await this.sendInventory();
          lastInventory = Date.now();
        }
        const ran = await this.pollOnce();
        this.failures = 0;
        if (ran > 0) lastInventory = 0; // report what changed
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof GatewayHttpError && e.status === 401) {
          await this.reEnroll();
          continue;
        }
        const wait = backoffMs(this.failures++);
        this.o.log.warn({ err: (e as Error).message, retryInMs: wait }, 'gateway unreachable; backing off');
        await this.pause(wait);
      }
    }
    this.o.log.info('agent stopped');
  }
}
