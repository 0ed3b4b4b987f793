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
import { checkServerUrl, GatewayClient, GatewayHttpError, jitterAfter, retryDelayMs } from './client';
import { availableBackends, detectPlatform, type PlatformFacts } from './platform';
import { bootTime, SystemRebooter, takeDeferRequest, tickReboot, type Rebooter } from './reboot';
import { JobRunner, type FileInstaller } from './runner';
import { StateStore, type AgentState } from './state';

export const AGENT_VERSION = '0.1.0';

export interface AgentOptions {
  /** https://, or http:// with `insecureHttp` or on this machine's loopback (checkServerUrl). */
  serverUrl: string;
  /** Allow a plain-http server URL on the network (`--insecure-http`). */
  insecureHttp?: boolean;
  enrollSecret?: string;
  stateDir: string;
  log: Logger;
  /** Override detection (tests). */
  platform?: PlatformFacts;
  /** Override the detected machine id / hostname (cloned images, several agents on one machine in tests). */
  machineId?: string;
  hostname?: string;
  /** The endpoint's site, sent at enrolment (the server tags it `site:<site>`; its distribution points are offered). */
  site?: string;
  backends?: Map<string, Backend>;
  aptRoot?: string;
  rebooter?: Rebooter;
  fileInstaller?: FileInstaller;
  waitSeconds?: number;
  inventoryEveryMs?: number;
  signal?: AbortSignal;
  fetchImpl?: typeof fetch;
  /** Renew a running job's lease at least this often (default: a third of the lease). */
  leaseRenewEveryMs?: number;
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
  private downloadToken: string | undefined;
  private failures = 0;
  private rebooter!: Rebooter;

  /** Throws, before anything is sent or written, when the server URL is refused (see checkServerUrl). */
  constructor(private readonly o: AgentOptions) {
    checkServerUrl(o.serverUrl, { insecureHttp: o.insecureHttp });
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
    await this.store.ensureRequestsDir();
    this.rebooter = this.o.rebooter ?? new SystemRebooter();
    this.backends = this.o.backends ?? createBackends(await availableBackends(this.facts), { aptRoot: this.o.aptRoot });
    this.runner = new JobRunner({
      backends: this.backends,
      getState: () => this.state,
      updateState: async (p) => {
        this.state = { ...this.state, ...p };
        await this.store.save(this.state);
      },
      rebooter: this.rebooter,
      fetchManifest: () => this.client.manifest(),
      sources: () => [...this.distributionPoints, this.o.serverUrl],
      // The node key goes to the central server only; distribution points get the poll's short-lived download token.
      authFor: (source) =>
        source === this.o.serverUrl
          ? `Bearer ${this.state.nodeKey}`
          : this.downloadToken && `Bearer ${this.downloadToken}`,
      downloadDir: this.store.downloads,
      fileInstaller: this.o.fileInstaller,
      fetchImpl: this.o.fetchImpl,
      log: this.o.log,
    });
    this.o.log.info(
      { endpointId: this.state.endpointId, backends: [...new Set([...this.backends.values()].map((b) => b.name))] },
      'agent started',
    );
  }

  private async enroll(): Promise<void> {
    if (!this.o.enrollSecret)
      throw new Error(
        `this agent is not enrolled with ${this.o.serverUrl} (no identity in ${this.store.file}): pass --enroll-secret`,
      );
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
          site: this.o.site,
        });
        // A re-enrolment keeps the pinned key when it already had one for this server (the key is pinned, not replaced).
        const pinned =
          this.state?.serverUrl === this.o.serverUrl ? this.state.manifestSigningKey : res.manifestSigningKey;
        this.state = {
          serverUrl: this.o.serverUrl,
          endpointId: res.endpointId,
          nodeKey: res.nodeKey,
          manifestSigningKey: pinned,
          machineId: this.facts.machineId,
          lastManifestVersion: this.state?.lastManifestVersion ?? 0,
          previousVersions: this.state?.previousVersions ?? {},
          pendingReboot: this.state?.pendingReboot,
        };
        await this.store.save(this.state);
        this.client.nodeKey = res.nodeKey;
        if (res.pending)
          this.o.log.warn(
            { endpointId: res.endpointId },
            `enrolment waits for an admin: ${res.message ?? 'patchops agents approve'}`,
          );
        else this.o.log.info({ endpointId: res.endpointId }, 'agent enrolled');
        return;
      } catch (e) {
        if (e instanceof GatewayHttpError && (e.status === 401 || e.status === 400))
          throw new Error(`enrolment refused: ${e.message}`, { cause: e });
        if (this.stopped) throw e;
        const wait = retryDelayMs(e, attempt);
        this.o.log.warn(
          { err: (e as Error).message, retryInMs: wait },
          'server unreachable or busy for enrolment; retrying',
        );
        await this.pause(wait);
      }
    }
  }

  async sendInventory(): Promise<void> {
    const software: Array<{ source: string; name: string; version: string; vendor?: string }> = [];
    for (const b of new Set(this.backends.values())) software.push(...(await b.inventory().catch(() => [])));
    let pendingReboot = Boolean(this.state.pendingReboot);
    for (const b of new Set(this.backends.values()))
      if (b.rebootPending && (await b.rebootPending().catch(() => false))) pendingReboot = true;
    await this.client.inventory({
      hostname: this.facts.hostname,
      osName: this.facts.osName,
      osVersion: this.facts.osVersion,
      arch: this.facts.arch,
      agentVersion: AGENT_VERSION,
      pendingReboot,
      software,
    });
  }

  private async report(job: AgentJob, result: JobResult): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const r = await this.client.result(job.id, result);
        this.o.log.info(
          { jobId: job.id, kind: job.kind, status: result.status, outcome: r.outcome },
          'job result reported',
        );
        this.o.onJobDone?.(job, result);
        return;
      } catch (e) {
        if (e instanceof GatewayHttpError && [400, 403, 404, 409].includes(e.status)) {
          this.o.log.warn({ jobId: job.id, err: e.message }, 'the server refused the job result; dropping it');
          return;
        }
        if (e instanceof GatewayHttpError && e.status === 401) await this.reEnroll();
        // 503 (server busy) and 429 carry Retry-After: the result is kept and sent again after it, never dropped.
        const wait = retryDelayMs(e, attempt);
        this.o.log.warn(
          { jobId: job.id, err: (e as Error).message, retryInMs: wait },
          'could not report the job result; retrying',
        );
        await this.pause(wait);
      }
    }
  }

  private async reEnroll(): Promise<void> {
    if (!this.o.enrollSecret)
      throw new Error(
        "the server no longer accepts this agent's node key and no enrol secret was given to re-enrol: pass --enroll-secret",
      );
    this.o.log.warn('node key refused; enrolling again');
    await this.enroll();
  }

  /** Carries a pending restart forward: applies the user's deferral request and restarts when due. */
  async rebootTick(now = new Date()): Promise<void> {
    const pending = this.state.pendingReboot ?? null;
    if (!pending) return;
    const deferRequested = pending.issuedAt ? false : await takeDeferRequest(this.store.deferFile);
    const t = await tickReboot({
      pending,
      deferRequested,
      rebooter: this.rebooter,
      now,
      bootedAt: bootTime(now.getTime()),
    });
    if (t.pending !== pending) {
      this.state = { ...this.state, pendingReboot: t.pending ?? undefined };
      await this.store.save(this.state);
    }
    if (t.action !== 'none')
      this.o.log.info(
        { action: t.action, dueAt: t.pending.dueAt, deferralsUsed: t.pending.deferralsUsed },
        'pending restart',
      );
    else if (!t.pending) this.o.log.info('the machine restarted; no restart pending');
  }

  /** Seconds until a pending restart is due (the long poll is cut short to act on it in time). */
  private secondsToReboot(): number | undefined {
    const p = this.state.pendingReboot;
    if (!p || p.issuedAt) return undefined;
    return Math.max(1, Math.ceil((Date.parse(p.dueAt) - Date.now()) / 1000));
  }

  /**
   * Keeps the leases of these jobs alive until each is reported: a poll hands out up to ten jobs that run one
   * after another, and an install can outlast the lease; without renewal a job would be offered again or
   * counted unreachable while the agent still works on it. Returns `done(jobId)` and `stop()`.
   */
  private renewLeases(jobs: AgentJob[]): { done(id: string): void; stop(): void } {
    const open = new Set(jobs.map((j) => j.id));
    if (open.size === 0) return { done: () => undefined, stop: () => undefined };
    const leaseMs = Math.min(...jobs.map((j) => Date.parse(j.leaseExpiresAt) - Date.now()));
    const every = Math.max(1000, Math.min(this.o.leaseRenewEveryMs ?? Infinity, Math.floor(leaseMs / 3)));
    const timer = setInterval(() => {
      for (const id of open) {
        this.client.renewLease(id).then(
          (r) => this.o.log.debug({ jobId: id, leaseExpiresAt: r.leaseExpiresAt }, 'job lease renewed'),
          (e: unknown) => {
            if (e instanceof GatewayHttpError && [403, 404, 409].includes(e.status)) {
              open.delete(id);
              this.o.log.warn(
                { jobId: id, err: e.message },
                'the server no longer holds this job for this agent; stopped renewing its lease',
              );
            } else
              this.o.log.warn({ jobId: id, err: (e as Error).message }, 'could not renew the job lease; will retry');
          },
        );
      }
    }, every);
    return { done: (id) => open.delete(id), stop: () => clearInterval(timer) };
  }

  /** One poll and the jobs it brought. Returns how many jobs ran. */
  async pollOnce(waitSeconds = this.o.waitSeconds ?? 30): Promise<number> {
    const res = await this.client.poll(Math.min(waitSeconds, this.secondsToReboot() ?? Infinity));
    this.distributionPoints = res.distributionPoints;
    this.downloadToken = res.downloadToken;
    const leases = this.renewLeases(res.jobs);
    // The server held no poll for us (it holds as many as it can): come back when it said, not at once.
    if (res.jobs.length === 0 && res.retryAfterMs !== undefined) await this.pause(jitterAfter(res.retryAfterMs));
    try {
      for (const job of res.jobs) {
        if (this.stopped) break;
        this.o.log.info({ jobId: job.id, kind: job.kind }, 'job started');
        const result = await this.runner.run(job);
        await this.report(job, result);
        leases.done(job.id);
      }
    } finally {
      leases.stop();
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
        await this.rebootTick().catch((e: Error) =>
          this.o.log.error({ err: e.message }, 'could not carry out the pending restart'),
        );
        const ran = await this.pollOnce();
        this.failures = 0;
        if (ran > 0) lastInventory = 0; // report what changed
      } catch (e) {
        if (this.stopped) break;
        if (e instanceof GatewayHttpError && e.status === 401) {
          await this.reEnroll();
          continue;
        }
        const wait = retryDelayMs(e, this.failures++);
        const pending = e instanceof GatewayHttpError && e.status === 403 && e.code === 'ENROLLMENT_PENDING';
        this.o.log.warn(
          { err: (e as Error).message, retryInMs: wait },
          pending
            ? 'enrolment waits for an admin (patchops agents approve); asking again later'
            : e instanceof GatewayHttpError && e.retryAfterMs !== undefined
              ? 'gateway busy; polling again after its Retry-After'
              : 'gateway unreachable; backing off',
        );
        await this.pause(wait);
      }
    }
    this.o.log.info('agent stopped');
  }
}
