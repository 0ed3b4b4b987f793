/**
 * dnf / yum (RHEL, Fedora, Rocky, Alma, openEuler). Scan = `dnf updateinfo list --with-cve` (advisory or CVE,
 * "Severity/Type", package NEVRA) merged by advisory; install exact NEVRAs; rollback = `dnf history undo` of
 * the transaction our install made (or downgrade to the previous versions).
 */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface UpdateInfoLine {
  /** RHSA-2024:1234 / FEDORA-2024-… / CVE-2022-3080 */
  id: string;
  severity: string;
  /** Sec. | bugfix | enhancement | newpackage */
  kind: string;
  nevra: string;
}

/** Parses `dnf|yum updateinfo list [--with-cve]` lines: "<id> <Severity>/<Type> <nevra>" (severity may be absent: "bugfix"). */
export function parseUpdateInfoList(text: string): UpdateInfoLine[] {
  const out: UpdateInfoLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = /^([A-Z][A-Za-z0-9]*-[0-9A-Za-z:._-]+)\s+(?:(\w+)\/)?(Sec\.|bugfix|enhancement|newpackage|security)\s+(\S+)/.exec(line);
    if (!m) continue;
    out.push({ id: m[1]!, severity: m[2] ?? '', kind: m[3]!, nevra: m[4]! });
  }
  return out;
}

/** name-version-release.arch → { name, version: version-release, arch } (epoch-less form). */
export function splitNevra(nevra: string): { name: string; version: string; arch: string } {
  const arch = nevra.slice(nevra.lastIndexOf('.') + 1);
  const nvr = nevra.slice(0, nevra.lastIndexOf('.'));
  const r = nvr.lastIndexOf('-');
  const v = nvr.lastIndexOf('-', r - 1);
  return { name: nvr.slice(0, v), version: nvr.slice(v + 1), arch };
}

const TYPE: Record<string, string> = { 'sec.': 'security', security: 'security', bugfix: 'bug_fix', enhancement: 'feature', newpackage: 'feature' };

/** Groups lines into patches: an advisory (RHSA…) with its packages and CVEs; CVE lines attach to the advisory fixing the same package. */
export function updateInfoToPatches(lines: UpdateInfoLine[], vendor = 'Red Hat'): FoundPatch[] {
  const byId = new Map<string, FoundPatch>();
  const cvesByPkg = new Map<string, string[]>();
  for (const l of lines) {
    if (l.id.startsWith('CVE-')) {
      cvesByPkg.set(l.nevra, [...(cvesByPkg.get(l.nevra) ?? []), l.id]);
      continue;
    }
  }
  for (const l of lines) {
    const pkg = splitNevra(l.nevra);
    const id = l.id.startsWith('CVE-') ? `rpm:${pkg.name}:${pkg.version}` : l.id;
    if (l.id.startsWith('CVE-') && lines.some((o) => !o.id.startsWith('CVE-') && o.nevra === l.nevra)) continue;
    const existing = byId.get(id);
    // the newest package version of an advisory wins (yum lists every advisory's package versions)
    const ref: PackageRef = { manager: 'dnf', name: pkg.name, version: pkg.version };
    if (existing) {
      if (!existing.packages.some((p) => p.name === ref.name && p.version === ref.version)) existing.packages.push(ref);
      for (const c of cvesByPkg.get(l.nevra) ?? []) if (!existing.cves.includes(c)) existing.cves.push(c);
      continue;
    }
    byId.set(id, {
      patchId: id,
      title: `${id} ${pkg.name} ${pkg.version}`,
      vendor,
      product: pkg.name,
      type: TYPE[l.kind.toLowerCase()] ?? 'update',
      vendorSeverity: l.severity || undefined,
      severitySource: 'redhat',
      cves: l.id.startsWith('CVE-') ? [l.id, ...(cvesByPkg.get(l.nevra) ?? []).filter((c) => c !== l.id)] : [...(cvesByPkg.get(l.nevra) ?? [])],
      rebootRequired: /^(kernel|glibc|systemd)(-|$)/.test(pkg.name),
      packages: [ref],
    });
  }
  return [...byId.values()];
}

export class DnfBackend implements Backend {
  readonly name = 'dnf';
  private lastTransaction: string | null = null;
  constructor(
    private readonly exec: Exec = execFile,
    private readonly bin = 'dnf',
  ) {}

  async scan(): Promise<FoundPatch[]> {
    const r = await this.exec(this.bin, ['-q', 'updateinfo', 'list', '--available', '--with-cve'], { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: 30 * 60_000 });
    const r2 = await this.exec(this.bin, ['-q', 'updateinfo', 'list', '--available'], { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: 30 * 60_000 });
    if (r.code !== 0 && r2.code !== 0) throw new Error(`${this.bin} updateinfo failed (${r2.code}): ${tail(r2.stderr, 1000)}`);
    return updateInfoToPatches([...parseUpdateInfoList(r2.stdout), ...parseUpdateInfoList(r.stdout)]);
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const specs = pkgs.map((p) => (p.version ? `${p.name}-${p.version}` : p.name));
    const test = await this.exec(this.bin, ['-y', '--setopt=tsflags=test', 'install', ...specs], { timeoutMs: 30 * 60_000 });
    if (test.code !== 0) return { ok: false, error: `test transaction refused: ${tail(test.stderr, 800)}`, log: tail(test.stdout + test.stderr) };
    const run = await this.exec(this.bin, ['-y', 'install', ...specs], { timeoutMs: 60 * 60_000 });
    if (run.code !== 0) return { ok: false, error: `${this.bin} install failed (${run.code}): ${tail(run.stderr, 800)}`, log: tail(run.stdout + run.stderr) };
    const hist = await this.exec(this.bin, ['-q', 'history', 'list', '--reverse']);
    this.lastTransaction = /^\s*(\d+)\s*\|/m.exec(hist.stdout.split('\n').reverse().join('\n'))?.[1] ?? null;
    const needs = await this.exec('needs-restarting', ['-r']);
    return { ok: true, log: tail(run.stdout), rebootRequired: needs.code === 1 };
  }

  async rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const specs = pkgs.filter((p) => previousVersions[p.name]).map((p) => `${p.name}-${previousVersions[p.name]}`);
    const args = specs.length > 0 ? ['-y', 'downgrade', ...specs] : this.lastTransaction ? ['-y', 'history', 'undo', this.lastTransaction] : null;
    if (!args) return { ok: false, error: 'no previous version and no transaction to undo', log: '' };
    const r = await this.exec(this.bin, args, { timeoutMs: 60 * 60_000 });
    return { ok: r.code === 0, error: r.code === 0 ? undefined : `${this.bin} ${args[1]} failed: ${tail(r.stderr, 800)}`, log: tail(r.stdout + r.stderr) };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    const r = await this.exec('rpm', ['-q', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\n', ...names]);
    for (const line of r.stdout.split('\n')) {
      const [n, v] = line.split('\t');
      if (n && v && out.has(n)) out.set(n, v);
    }
    return out;
  }

  async inventory() {
    const r = await this.exec('rpm', ['-qa', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\t%{VENDOR}\\n']);
    return r.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter((f) => f[0])
      .map((f) => ({ source: 'dnf', name: f[0]!, version: f[1] ?? '', vendor: f[2] && f[2] !== '(none)' ? f[2] : undefined }));
  }

  async rebootPending(): Promise<boolean> {
    return (await this.exec('needs-restarting', ['-r'])).code === 1;
  }
}
