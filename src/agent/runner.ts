/** Runs one job with the machine's backends and turns what happened into the protocol's JobResult. */
import path from 'node:path';
import type { Logger } from 'pino';
import {
  patchJobPayloadSchema,
  scanJobPayloadSchema,
  type AgentJob,
  type FoundPatch,
  type JobResult,
  type PackageRef,
  type PatchJobPayload,
  type SignedManifest,
} from '../shared/agent-protocol';
import { patchPayloadProblems } from '../shared/package-names';
import { execFile, tail, type Exec } from './exec';
import { planReboot, type Rebooter } from './reboot';
import type { AgentState } from './state';
import type { Backend, OperationResult } from './backends/types';
import { downloadVerified, verifyManifest, VerificationError } from './verify';

export type FileInstaller = (file: string, ref: PackageRef) => Promise<OperationResult>;

export interface RunnerDeps {
  /** By manager name (apt, dnf, yum, zypper, windows-update, winget, softwareupdate, brew). */
  backends: Map<string, Backend>;
  getState(): AgentState;
  updateState(patch: Partial<AgentState>): Promise<void>;
  rebooter: Rebooter;
  fetchManifest(): Promise<SignedManifest>;
  /** Base URLs to download from, in order: distribution points, then the central server. */
  sources(): string[];
  /** The Authorization header to send a source (verify.ts DownloadOptions.authFor). */
  authFor?(source: string): string | undefined;
  downloadDir: string;
  fileInstaller?: FileInstaller;
  fetchImpl?: typeof fetch;
  now?: () => Date;
  log: Logger;
}

type PatchOutcome = JobResult['patches'][number];

export class JobRunner {
  constructor(private readonly d: RunnerDeps) {}

  async run(job: AgentJob): Promise<JobResult> {
    const now = this.d.now?.() ?? new Date();
    if (job.deadline && Date.parse(job.deadline) < now.getTime()) {
      return {
        status: 'failed',
        patches: [],
        rebootPending: false,
        error: 'deadline passed before the agent could start the job',
      };
    }
    try {
      switch (job.kind) {
        case 'scan':
          return await this.scan(scanJobPayloadSchema.parse(job.payload).patchIds);
        case 'install':
        case 'verify':
        case 'rollback': {
          const payload = patchJobPayloadSchema.parse(job.payload);
          const refused = refusePayload(job.kind, payload);
          if (refused) return refused;
          return job.kind === 'install'
            ? await this.install(payload)
            : job.kind === 'verify'
              ? await this.verify(payload)
              : await this.rollback(payload);
        }
        case 'reboot':
          return await this.reboot(patchJobPayloadSchema.partial().parse(job.payload).reboot);
      }
    } catch (e) {
      return {
        status: 'failed',
        patches: [],
        rebootPending: false,
        error: `the ${job.kind} job failed: ${(e as Error).message}`,
      };
    }
  }

  private async rebootPending(): Promise<boolean> {
    for (const b of this.d.backends.values())
      if (b.rebootPending && (await b.rebootPending().catch(() => false))) return true;
    return false;
  }

  private uniqueBackends(): Backend[] {
    return [...new Set(this.d.backends.values())];
  }

  async scan(patchIds: string[]): Promise<JobResult> {
    const missing: FoundPatch[] = [];
    const errors: string[] = [];
    for (const b of this.uniqueBackends()) {
      try {
        missing.push(...(await b.scan()));
      } catch (e) {
        errors.push(`${b.name}: ${(e as Error).message}`);
      }
    }
    const backends = this.uniqueBackends().length;
    if (backends === 0)
      return {
        status: 'failed',
        patches: [],
        rebootPending: false,
        error: 'no package manager this agent knows is present on this machine',
      };
    const filtered = patchIds.length > 0 ? missing.filter((m) => patchIds.includes(m.patchId)) : missing;
    const allFailed = errors.length === backends;
    return {
      status: allFailed ? 'failed' : 'succeeded',
      patches: [],
      missing: allFailed ? undefined : filtered,
      rebootPending: await this.rebootPending(),
      error: errors.length > 0 ? errors.join('; ') : undefined,
    };
  }

  private backendFor(manager: string): Backend {
    const b = this.d.backends.get(manager);
    if (!b) throw new Error(`no ${manager} on this machine`);
    return b;
  }

  private async recordPrevious(pkgs: PackageRef[]): Promise<Record<string, string>> {
    const prev: Record<string, string> = {};
    const byManager = groupBy(
      pkgs.filter((p) => p.manager !== 'file'),
      (p) => p.manager,
    );
    const all = { ...this.d.getState().previousVersions };
    for (const [manager, list] of byManager) {
      const versions = await this.backendFor(manager).installedVersions(list.map((p) => p.name));
      const m = { ...(all[manager] ?? {}) };
      for (const [name, v] of versions)
        if (v) {
          prev[name] = v;
          m[name] = v;
        }
      all[manager] = m;
    }
    await this.d.updateState({ previousVersions: all });
    return prev;
  }

  /** Downloads and verifies every file the patches carry; throws VerificationError before anything is installed. */
  private async fetchFiles(pkgs: PackageRef[]): Promise<Map<PackageRef, string>> {
    const files = pkgs.filter((p) => p.manager === 'file');
    const out = new Map<PackageRef, string>();
    if (files.length === 0) return out;
    const state = this.d.getState();
    const manifest = verifyManifest(await this.d.fetchManifest(), state.manifestSigningKey, {
      now: this.d.now?.() ?? new Date(),
      lastSeenVersion: state.lastManifestVersion,
    });
    for (const f of files) {
      if (!f.sha256)
        throw new VerificationError('not_in_manifest', `${f.name} carries no sha256: refusing to install it`);
      out.set(
        f,
        await downloadVerified({ name: f.name, sha256: f.sha256 }, manifest, {
          sources: this.d.sources(),
          destDir: this.d.downloadDir,
          authFor: this.d.authFor,
          fetchImpl: this.d.fetchImpl,
        }),
      );
    }
    if (manifest.version > state.lastManifestVersion)
      await this.d.updateState({ lastManifestVersion: manifest.version });
    return out;
  }

  async install(payload: PatchJobPayload): Promise<JobResult> {
    const allPkgs = payload.patches.flatMap((p) => p.packages);
    let files: Map<PackageRef, string>;
    try {
      files = await this.fetchFiles(allPkgs);
    } catch (e) {
      const why = e instanceof VerificationError ? `refused (${e.reason}): ${e.message}` : (e as Error).message;
      return {
        status: 'failed',
        error: why,
        rebootPending: await this.rebootPending(),
        patches: payload.patches.map((p) => ({ patchId: p.patchId, state: 'failed', error: why })),
      };
    }
    await this.recordPrevious(allPkgs);
    const outcomes: PatchOutcome[] = [];
    const logs: string[] = [];
    let rebootRequired = false;
    for (const patch of payload.patches) {
      let res: OperationResult = { ok: true, log: '' };
      for (const [manager, pkgs] of groupBy(patch.packages, (p) => p.manager)) {
        if (manager === 'file') {
          for (const p of pkgs) {
            res = await (this.d.fileInstaller ?? defaultFileInstaller())(files.get(p)!, p);
            logs.push(res.log);
            if (!res.ok) break;
          }
        } else {
          res = await this.backendFor(manager).install(pkgs);
          logs.push(res.log);
        }
        if (!res.ok) break;
        rebootRequired ||= Boolean(res.rebootRequired);
      }
      if (!res.ok) {
        outcomes.push({ patchId: patch.patchId, state: 'failed', error: res.error });
        continue;
      }
      const check = await this.checkVersions(patch.packages);
      if (check) outcomes.push({ patchId: patch.patchId, state: 'failed', error: `installed, but ${check}` });
      else {
        const needsReboot = patch.rebootRequired || Boolean(res.rebootRequired);
        rebootRequired ||= needsReboot;
        outcomes.push({
          patchId: patch.patchId,
          state: needsReboot ? 'pending_reboot' : 'installed',
          installedVersion: patch.packages[0]?.version,
        });
      }
    }
    const pending = this.d.getState().pendingReboot ?? null;
    const planned = await planReboot({
      policy: payload.reboot,
      required: rebootRequired,
      rebooter: this.d.rebooter,
      pending,
      now: this.d.now?.() ?? new Date(),
    });
    if (planned !== pending) await this.d.updateState({ pendingReboot: planned ?? undefined });
    if (planned && !planned.issuedAt)
      logs.push(`restart planned for ${planned.dueAt} (policy: ${planned.policy.behaviour})`);
    const failed = outcomes.filter((o) => o.state === 'failed');
    return {
      status: failed.length === 0 ? 'succeeded' : 'failed',
      patches: outcomes,
      rebootPending: rebootRequired || (await this.rebootPending()),
      error: failed.length > 0 ? failed.map((f) => `${f.patchId}: ${f.error}`).join('; ') : undefined,
      log: tail(logs.join('\n'), 60_000),
    };
  }

  /** null when every package with a version is installed at exactly that version, else what differs. */
  private async checkVersions(pkgs: PackageRef[]): Promise<string | null> {
    for (const [manager, list] of groupBy(
      pkgs.filter((p) => p.manager !== 'file' && p.version),
      (p) => p.manager,
    )) {
      const got = await this.backendFor(manager).installedVersions(list.map((p) => p.name));
      for (const p of list)
        if (got.get(p.name) !== p.version)
          return `${p.name} is at ${got.get(p.name) ?? 'nothing'}, expected ${p.version}`;
    }
    return null;
  }

  async verify(payload: PatchJobPayload): Promise<JobResult> {
    const outcomes: PatchOutcome[] = [];
    for (const patch of payload.patches) {
      const diff = await this.checkVersions(patch.packages);
      outcomes.push(
        diff
          ? { patchId: patch.patchId, state: 'missing', error: diff }
          : { patchId: patch.patchId, state: 'installed', installedVersion: patch.packages[0]?.version },
      );
    }
    return {
      status: outcomes.every((o) => o.state === 'installed') ? 'succeeded' : 'failed',
      patches: outcomes,
      rebootPending: await this.rebootPending(),
    };
  }

  async rollback(payload: PatchJobPayload): Promise<JobResult> {
    const outcomes: PatchOutcome[] = [];
    const remembered = this.d.getState().previousVersions;
    for (const patch of payload.patches) {
      let res: OperationResult = { ok: true, log: '' };
      for (const [manager, pkgs] of groupBy(
        patch.packages.filter((p) => p.manager !== 'file'),
        (p) => p.manager,
      )) {
        const previous = { ...(remembered[manager] ?? {}), ...(patch.previousVersions ?? {}) };
        res = await this.backendFor(manager).rollback(pkgs, previous);
        if (res.ok) {
          const got = await this.backendFor(manager).installedVersions(pkgs.map((p) => p.name));
          const wrong = pkgs.find((p) => previous[p.name] && got.get(p.name) !== previous[p.name]);
          if (wrong)
            res = {
              ok: false,
              log: res.log,
              error: `${wrong.name} is at ${got.get(wrong.name) ?? 'nothing'} after rollback, expected ${previous[wrong.name]}`,
            };
        }
        if (!res.ok) break;
      }
      outcomes.push(
        res.ok
          ? { patchId: patch.patchId, state: 'rolled_back' }
          : { patchId: patch.patchId, state: 'failed', error: res.error },
      );
    }
    const failed = outcomes.filter((o) => o.state === 'failed');
    return {
      status: failed.length ? 'failed' : 'succeeded',
      patches: outcomes,
      rebootPending: await this.rebootPending(),
      error: failed.length ? failed.map((f) => `${f.patchId}: ${f.error}`).join('; ') : undefined,
    };
  }

  /** A reboot job: plans the restart (the user is told and may defer); the agent's loop restarts when due. */
  async reboot(policy: PatchJobPayload['reboot']): Promise<JobResult> {
    const pending = this.d.getState().pendingReboot ?? null;
    const planned = await planReboot({
      policy: { ...(policy ?? { notifyUser: true, deferralLimit: 0, deferralMinutes: 60 }), behaviour: 'always' },
      required: true,
      rebooter: this.d.rebooter,
      pending,
      now: this.d.now?.() ?? new Date(),
    });
    if (planned !== pending) await this.d.updateState({ pendingReboot: planned ?? undefined });
    return {
      status: 'succeeded',
      patches: [],
      rebootPending: true,
      log: planned ? `restart due at ${planned.dueAt}` : undefined,
    };
  }
}

/**
 * The grammar check before any backend runs (src/shared/package-names.ts): every package name and version of the
 * payload, and every name and version of its previousVersions, must be one its backend's tool can only read as a
 * package. One bad entry refuses the whole job: nothing is installed, queried or rolled back, and the result says
 * which name was refused and why. An install naming no packages for a patch is refused too (it would "succeed"
 * having done nothing).
 */
function refusePayload(kind: 'install' | 'verify' | 'rollback', payload: PatchJobPayload): JobResult | null {
  const problems = patchPayloadProblems(payload.patches);
  if (kind === 'install')
    for (const p of payload.patches)
      if (p.packages.length === 0)
        problems.push(
          `${p.patchId}: names no packages to install (rescan the endpoint so the server knows its packages)`,
        );
  if (problems.length === 0) return null;
  const error = `refused the ${kind} job before running anything: ${problems.slice(0, 20).join('; ')}${problems.length > 20 ? `; and ${problems.length - 20} more` : ''}`;
  return {
    status: 'failed',
    rebootPending: false,
    error,
    patches: payload.patches.map((p) => ({ patchId: p.patchId, state: 'failed', error: error.slice(0, 4000) })),
  };
}

function groupBy<T>(list: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const item of list) m.set(key(item), [...(m.get(key(item)) ?? []), item]);
  return m;
}

/** Runs a verified installer file by its kind (.msi, .exe, .pkg, .deb, .rpm). */
export function defaultFileInstaller(exec: Exec = execFile): FileInstaller {
  return async (file) => {
    const ext = path.extname(file).toLowerCase();
    const cmd: [string, string[]] | null =
      ext === '.msi'
        ? ['msiexec', ['/i', file, '/qn', '/norestart']]
        : ext === '.exe'
          ? [file, ['/S']]
          : ext === '.pkg'
            ? ['installer', ['-pkg', file, '-target', '/']]
            : ext === '.deb'
              ? ['dpkg', ['-i', file]]
              : ext === '.rpm'
                ? ['rpm', ['-U', file]]
                : null;
    if (!cmd) return { ok: false, error: `do not know how to install ${path.basename(file)}`, log: '' };
    const r = await exec(cmd[0], cmd[1], { timeoutMs: 30 * 60_000 });
    return {
      ok: r.code === 0,
      error: r.code === 0 ? undefined : `${cmd[0]} exited ${r.code}: ${tail(r.stderr, 500)}`,
      log: tail(r.stdout + r.stderr),
    };
  };
}
