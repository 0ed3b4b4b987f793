/**
 * apt (Debian, Ubuntu). Scan = `apt-get update` + `apt-get -s upgrade` (simulation, nothing changes);
 * security updates are those whose origin is a *-security archive. Install = simulation first, then exact
 * versions (`name=version`). Rollback = install the previous version with --allow-downgrades.
 * `root` points apt and dpkg at another root (tests use a throwaway one; never the host's package state).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface AptUpgrade {
  name: string;
  current: string | null;
  candidate: string;
  /** "Debian-Security:12/stable-security", "Ubuntu:22.04/jammy-updates", … */
  origins: string[];
  arch: string;
  security: boolean;
}

/** Parses the `Inst` lines of `apt-get -s upgrade|dist-upgrade|install`. */
export function parseAptSimulation(text: string): AptUpgrade[] {
  const out: AptUpgrade[] = [];
  for (const line of text.split('\n')) {
    // Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
    // Inst tzdata (2024a-0+deb12u1 Debian:12.5/stable [all])
    const m = /^Inst (\S+)(?: \[([^\]]+)\])? \((\S+) (.*) \[([^\]]+)\]\)/.exec(line.trim());
    if (!m) continue;
    const origins = m[4]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    out.push({
      name: m[1]!,
      current: m[2] ?? null,
      candidate: m[3]!,
      origins,
      arch: m[5]!,
      security: origins.some((o) => /security/i.test(o)),
    });
  }
  return out;
}

export function aptPatchId(name: string, version: string): string {
  return `apt:${name}:${version}`;
}

export function aptUpgradeToPatch(u: AptUpgrade): FoundPatch {
  const origin = u.origins[0] ?? '';
  const vendor = /^ubuntu/i.test(origin)
    ? 'Ubuntu'
    : /^debian/i.test(origin)
      ? 'Debian'
      : origin.split(':')[0] || 'apt';
  return {
    patchId: aptPatchId(u.name, u.candidate),
    title: `${u.name} ${u.current ? `${u.current} → ` : ''}${u.candidate}${u.security ? ' (security)' : ''}`,
    vendor,
    product: u.name,
    type: u.security ? 'security' : 'update',
    severitySource: vendor === 'Ubuntu' ? 'ubuntu' : 'debian',
    cves: [],
    rebootRequired: /^(linux-image|linux-modules|libc6|systemd)($|-)/.test(u.name),
    packages: [{ manager: 'apt', name: u.name, version: u.candidate }],
  };
}

export interface AptOptions {
  /** Another root for apt and dpkg (tests); unset = the system. */
  root?: string;
  exec?: Exec;
  /** Run `apt-get update` before a scan (default true). */
  refresh?: boolean;
  timeoutMs?: number;
}

export class AptBackend implements Backend {
  readonly name = 'apt';
  private readonly exec: Exec;
  constructor(private readonly o: AptOptions = {}) {
    this.exec = o.exec ?? execFile;
  }

  private aptArgs(): string[] {
    const r = this.o.root;
    if (!r) return [];
    return [
      '-o',
      `Dir=${r}`,
      '-o',
      `Dir::State::status=${r}/var/lib/dpkg/status`,
      '-o',
      `DPkg::Options::=--root=${r}`,
      '-o',
      `DPkg::Options::=--admindir=${r}/var/lib/dpkg`,
      '-o',
      'DPkg::Options::=--force-not-root',
      '-o',
      'DPkg::Options::=--force-bad-path',
      '-o',
      'APT::Sandbox::User=root',
    ];
  }

  private aptGet(args: string[]) {
    return this.exec('apt-get', [...this.aptArgs(), ...args], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' },
      timeoutMs: this.o.timeoutMs ?? 30 * 60_000,
    });
  }

  async scan(): Promise<FoundPatch[]> {
    if (this.o.refresh !== false) {
      const upd = await this.aptGet(['update', '-q']);
      if (upd.code !== 0)
        throw new Error(`apt-get update failed (${upd.code}): ${tail(upd.stderr || upd.stdout, 2000)}`);
    }
    const sim = await this.aptGet(['-s', '-q', 'dist-upgrade']);
    if (sim.code !== 0)
      throw new Error(`apt-get -s dist-upgrade failed (${sim.code}): ${tail(sim.stderr || sim.stdout, 2000)}`);
    return parseAptSimulation(sim.stdout).map(aptUpgradeToPatch);
  }

  private async installExact(specs: string[], allowDowngrades: boolean): Promise<OperationResult> {
    const extra = [
      '-o',
      'Dpkg::Options::=--force-confdef',
      '-o',
      'Dpkg::Options::=--force-confold',
      ...(allowDowngrades ? ['--allow-downgrades'] : []),
    ];
    // `--` ends apt-get's options: a package name can never be read as one (`-oDPkg::Pre-Invoke::=…` runs a command).
    const sim = await this.aptGet(['-s', '-q', 'install', ...extra, '--', ...specs]);
    if (sim.code !== 0)
      return {
        ok: false,
        error: `simulation refused the change: ${tail(sim.stderr || sim.stdout, 1000).trim()}`,
        log: tail(sim.stdout + sim.stderr),
      };
    const run = await this.aptGet(['install', '-y', '-q', '--no-install-recommends', ...extra, '--', ...specs]);
    const log = tail(sim.stdout + run.stdout + run.stderr);
    if (run.code !== 0)
      return { ok: false, error: `apt-get install failed (${run.code}): ${tail(run.stderr, 1000).trim()}`, log };
    return { ok: true, log, rebootRequired: await this.rebootPending() };
  }

  install(pkgs: PackageRef[]): Promise<OperationResult> {
    return this.installExact(
      pkgs.map((p) => (p.version ? `${p.name}=${p.version}` : p.name)),
      false,
    );
  }

  rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const specs = pkgs.filter((p) => previousVersions[p.name]).map((p) => `${p.name}=${previousVersions[p.name]}`);
    if (specs.length === 0)
      return Promise.resolve({ ok: false, error: 'no previous version known to roll back to', log: '' });
    return this.installExact(specs, true);
  }

  private dpkgQuery(args: string[]) {
    const admin = this.o.root ? [`--admindir=${this.o.root}/var/lib/dpkg`] : [];
    return this.exec('dpkg-query', [...admin, ...args], { env: { ...process.env, LC_ALL: 'C' } });
  }

  /**
   * Names as apt prints them: `libnvidia-gl-525` or, for the foreign-architecture instance of a multiarch
   * package, `libnvidia-gl-525:i386`. dpkg-query prints the bare name for both, so the architecture decides;
   * a bare name with several instances installed is the native one (`dpkg --print-architecture`) or `all`.
   */
  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    if (names.length === 0) return out;
    const res = await this.dpkgQuery([
      '-W',
      '-f=${Package}\\t${Architecture}\\t${Status}\\t${Version}\\n',
      '--',
      ...names,
    ]);
    const installed = res.stdout
      .split('\n')
      .map((line) => line.split('\t'))
      .filter((f) => f[0] && f[2]?.endsWith(' installed'))
      .map((f) => ({ name: f[0]!, arch: f[1] ?? '', version: f[3] ?? '' }));
    let native: string | undefined;
    for (const n of names) {
      const [bare, arch] = n.split(':') as [string, string | undefined];
      let hits = installed.filter((p) => p.name === bare && (arch === undefined || p.arch === arch));
      if (arch === undefined && hits.length > 1) {
        native ??= (await this.exec('dpkg', ['--print-architecture'])).stdout.trim();
        hits = hits.filter((p) => p.arch === native || p.arch === 'all');
      }
      if (hits.length === 1) out.set(n, hits[0]!.version);
    }
    return out;
  }

  async inventory() {
    const res = await this.dpkgQuery(['-W', '-f=${Package}\\t${Status}\\t${Version}\\t${Maintainer}\\n']);
    return res.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f) => f[0] && f[1]?.endsWith(' installed'))
      .map((f) => ({ source: 'apt', name: f[0]!, version: f[2] ?? '', vendor: f[3] || undefined }));
  }

  async rebootPending(): Promise<boolean> {
    const file = path.join(this.o.root ?? '/', 'var/run/reboot-required');
    return fs.stat(file).then(
      () => true,
      () => false,
    );
  }
}
