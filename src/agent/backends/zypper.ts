/** zypper (SUSE, openSUSE). Scan = `zypper list-patches` (category, severity, interactive=restart); install = `zypper patch --with-patch`. */
import type { FoundPatch, PackageRef } from '../../shared/agent-protocol';
import { execFile, tail, type Exec } from '../exec';
import type { Backend, OperationResult } from './types';

export interface ZypperPatch {
  repository: string;
  name: string;
  category: string;
  severity: string;
  interactive: string;
  status: string;
  summary: string;
}

/** Parses the table(s) of `zypper lp` / `zypper patches` (columns found by their header names). */
export function parseZypperPatches(text: string): ZypperPatch[] {
  const out: ZypperPatch[] = [];
  let cols: string[] | null = null;
  for (const line of text.split('\n')) {
    if (!line.includes('|')) {
      cols = line.trim() === '' ? null : cols;
      continue;
    }
    const cells = line.split('|').map((c) => c.trim());
    if (cells.includes('Name') && cells.includes('Category')) {
      cols = cells.map((c) => c.toLowerCase());
      continue;
    }
    if (!cols || /^-+\+/.test(line.trim())) continue;
    const get = (k: string) => cells[cols!.indexOf(k)] ?? '';
    out.push({ repository: get('repository'), name: get('name'), category: get('category'), severity: get('severity'), interactive: get('interactive'), status: get('status'), summary: get('summary') });
  }
  return out;
}

const TYPES: Record<string, string> = { security: 'security', recommended: 'bug_fix', optional: 'feature', feature: 'feature', document: 'update', yast: 'update' };

export function zypperToPatches(list: ZypperPatch[]): FoundPatch[] {
  return list
    .filter((p) => p.status === '' || /needed/i.test(p.status) && !/not needed/i.test(p.status))
    .map((p) => ({
      patchId: p.name,
      title: p.summary || p.name,
      vendor: 'SUSE',
      product: p.repository,
      type: TYPES[p.category.toLowerCase()] ?? 'update',
      vendorSeverity: p.severity && p.severity !== 'unspecified' ? p.severity : undefined,
      severitySource: 'suse',
      cves: [],
      rebootRequired: /reboot/i.test(p.interactive),
      packages: [{ manager: 'zypper', name: p.name }],
    }));
}

export class ZypperBackend implements Backend {
  readonly name = 'zypper';
  constructor(private readonly exec: Exec = execFile) {}

  async scan(): Promise<FoundPatch[]> {
    const r = await this.exec('zypper', ['--non-interactive', 'list-patches'], { env: { ...process.env, LC_ALL: 'C' }, timeoutMs: 30 * 60_000 });
    if (r.code !== 0 && r.code !== 100 && r.code !== 101) throw new Error(`zypper list-patches failed (${r.code}): ${tail(r.stderr, 800)}`);
    return zypperToPatches(parseZypperPatches(r.stdout));
  }

  async install(pkgs: PackageRef[]): Promise<OperationResult> {
    const args = ['--non-interactive', 'patch', ...pkgs.flatMap((p) => ['--with-patch', p.name])];
    const dry = await this.exec('zypper', [...args, '--dry-run'], { timeoutMs: 30 * 60_000 });
    if (![0, 100, 101, 102, 103].includes(dry.code)) return { ok: false, error: `dry run refused: ${tail(dry.stderr, 800)}`, log: tail(dry.stdout) };
    const r = await this.exec('zypper', args, { timeoutMs: 60 * 60_000 });
    // 102: installed, reboot needed; 103: restart of the package manager needed
    return { ok: [0, 102, 103].includes(r.code), rebootRequired: r.code === 102, error: [0, 102, 103].includes(r.code) ? undefined : `zypper patch failed (${r.code}): ${tail(r.stderr, 800)}`, log: tail(r.stdout + r.stderr) };
  }

  async rollback(pkgs: PackageRef[], previousVersions: Record<string, string>): Promise<OperationResult> {
    const specs = Object.entries(previousVersions).map(([n, v]) => `${n}=${v}`);
    if (specs.length === 0) return { ok: false, error: `zypper patches (${pkgs.map((p) => p.name).join(', ')}) cannot be undone without the previous package versions`, log: '' };
    const r = await this.exec('zypper', ['--non-interactive', 'install', '--oldpackage', ...specs], { timeoutMs: 60 * 60_000 });
    return { ok: r.code === 0, error: r.code === 0 ? undefined : tail(r.stderr, 800), log: tail(r.stdout + r.stderr) };
  }

  async installedVersions(names: string[]): Promise<Map<string, string | null>> {
    // For patches, "installed" = the patch is no longer needed.
    const out = new Map<string, string | null>(names.map((n) => [n, null]));
    const r = await this.exec('zypper', ['--non-interactive', 'patches'], { env: { ...process.env, LC_ALL: 'C' } });
    for (const p of parseZypperPatches(r.stdout)) if (out.has(p.name) && /applied|not needed/i.test(p.status)) out.set(p.name, 'applied');
    return out;
  }

  async inventory() {
    const r = await this.exec('rpm', ['-qa', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\n']);
    return r.stdout.split('\n').filter(Boolean).map((l) => {
      const [name, version] = l.split('\t');
      return { source: 'zypper', name: name!, version: version ?? '' };
    });
  }

  async rebootPending(): Promise<boolean> {
    return (await this.exec('zypper', ['needs-rebooting'])).code === 102;
  }
}
